// poc/detail/asio_config.hpp — include before any Asio header (every Poc header and source that
// uses Asio does so first).
//
// Why: Asio 1.22 (asio/detail/config.hpp) chooses how its inline asio::aligned_new /
// asio::aligned_delete allocate the memory of handlers, operations and thread-local caches —
// std::aligned_alloc / std::free, or ::operator new / ::operator delete — from
// _GLIBCXX_HAVE_ALIGNED_ALLOC, a libstdc++ macro that exists only once some standard library
// header has been included. A translation unit that includes an Asio header before any standard
// header therefore compiles the other pair than one that includes <vector> first: two different
// definitions of the same inline functions in one program (an ODR violation). Memory that one
// translation unit allocated with std::aligned_alloc (a handler posted from a test) was freed with
// ::operator delete by another (the io_context thread's cache, in runtime.cpp) — AddressSanitizer
// reports alloc-dealloc-mismatch (scripts/sanitize asan), and with a replaced global operator
// new/delete it would corrupt the heap.
//
// Including a standard header first makes every translation unit that reaches Asio through Poc
// take the same branch (std::aligned_alloc). The check below turns a wrong order — Asio included
// before this header, without a standard header before it — into a compile error instead of a
// silent mismatch with the Poc library: include a Poc header (or any standard header) first.
#pragma once

#include <cstddef>  // libstdc++'s <bits/c++config.h>: _GLIBCXX_HAVE_ALIGNED_ALLOC

#if defined(ASIO_DETAIL_CONFIG_HPP) && defined(__GLIBCXX__) && defined(_GLIBCXX_HAVE_ALIGNED_ALLOC) && \
    !defined(ASIO_HAS_STD_ALIGNED_ALLOC) && !defined(ASIO_DISABLE_STD_ALIGNED_ALLOC) &&         \
    __cplusplus >= 201703L
#error "Asio was included before any standard header: it would allocate differently from the Poc \
library (see poc/detail/asio_config.hpp). Include a Poc header or a standard header before Asio."
#endif
