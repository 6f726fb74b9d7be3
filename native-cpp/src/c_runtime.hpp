// The opaque poc_cpp_runtime of bridge.h: a poc::runtime behind a C name.
#pragma once

#include <poc/bridge.h>
#include <poc/runtime.hpp>

struct poc_cpp_runtime {
  explicit poc_cpp_runtime(unsigned threads) : rt(threads) {}
  poc::runtime rt;
};
