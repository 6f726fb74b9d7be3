// fuzz/compat/expected_compat.hpp — std::expected / std::unexpected for the fuzz build only.
//
// Why: the fuzz build (POC_FUZZ=ON) compiles the C++ library with clang-14 for libFuzzer's
// coverage. libstdc++ 12's <expected> defines nothing under clang-14: it requires
// __cpp_concepts >= 202002L (conditionally trivial special members, P0848), which clang only
// provides from version 16. The library uses a small part of std::expected (construction from a
// value or std::unexpected, has_value / operator bool, operator* / ->, value(), error(), and
// expected<void, E>), so this header supplies that part when the standard library does not.
// The root CMakeLists.txt force-includes it (-include) into poc_cpp's sources in the fuzz build
// only; with a standard library that has std::expected it is empty. The default (g++) build
// never sees it.
#pragma once

#include <version>

#if !defined(__cpp_lib_expected)

#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace std {

template <class E>
class unexpected {
 public:
  template <class Err = E>
    requires(!is_same_v<remove_cvref_t<Err>, unexpected> && is_constructible_v<E, Err>)
  constexpr explicit unexpected(Err&& e) : e_(std::forward<Err>(e)) {}

  constexpr const E& error() const& noexcept { return e_; }
  constexpr E& error() & noexcept { return e_; }
  constexpr E&& error() && noexcept { return std::move(e_); }

 private:
  E e_;
};

template <class E>
unexpected(E) -> unexpected<E>;

template <class E>
class bad_expected_access : public exception {
 public:
  explicit bad_expected_access(E e) : e_(std::move(e)) {}
  const char* what() const noexcept override { return "bad expected access"; }
  const E& error() const& noexcept { return e_; }

 private:
  E e_;
};

template <class T, class E>
class expected {
 public:
  using value_type = T;
  using error_type = E;

  constexpr expected()
    requires is_default_constructible_v<T>
      : has_(true) {
    std::construct_at(&v_);
  }
  expected(const expected& o) : has_(o.has_) {
    if (has_) std::construct_at(&v_, o.v_);
    else std::construct_at(&e_, o.e_);
  }
  expected(expected&& o) noexcept(is_nothrow_move_constructible_v<T> && is_nothrow_move_constructible_v<E>)
      : has_(o.has_) {
    if (has_) std::construct_at(&v_, std::move(o.v_));
    else std::construct_at(&e_, std::move(o.e_));
  }
  template <class U = T>
    requires(!is_same_v<remove_cvref_t<U>, expected> && !is_same_v<remove_cvref_t<U>, in_place_t> &&
             is_constructible_v<T, U>)
  expected(U&& v) : has_(true) {  // NOLINT: implicit, as the standard's
    std::construct_at(&v_, std::forward<U>(v));
  }
  template <class G>
  expected(const unexpected<G>& u) : has_(false) {  // NOLINT
    std::construct_at(&e_, u.error());
  }
  template <class G>
  expected(unexpected<G>&& u) : has_(false) {  // NOLINT
    std::construct_at(&e_, std::move(u).error());
  }

  ~expected() { destroy(); }

  expected& operator=(const expected& o) {
    if (this != &o) {
      expected tmp(o);
      destroy();
      has_ = tmp.has_;
      if (has_) std::construct_at(&v_, std::move(tmp.v_));
      else std::construct_at(&e_, std::move(tmp.e_));
    }
    return *this;
  }
  expected& operator=(expected&& o) noexcept(is_nothrow_move_constructible_v<T> && is_nothrow_move_constructible_v<E>) {
    if (this != &o) {
      destroy();
      has_ = o.has_;
      if (has_) std::construct_at(&v_, std::move(o.v_));
      else std::construct_at(&e_, std::move(o.e_));
    }
    return *this;
  }

  constexpr bool has_value() const noexcept { return has_; }
  constexpr explicit operator bool() const noexcept { return has_; }

  constexpr T& operator*() & noexcept { return v_; }
  constexpr const T& operator*() const& noexcept { return v_; }
  constexpr T&& operator*() && noexcept { return std::move(v_); }
  constexpr T* operator->() noexcept { return &v_; }
  constexpr const T* operator->() const noexcept { return &v_; }

  T& value() & {
    if (!has_) throw bad_expected_access<E>(e_);
    return v_;
  }
  const T& value() const& {
    if (!has_) throw bad_expected_access<E>(e_);
    return v_;
  }
  T&& value() && {
    if (!has_) throw bad_expected_access<E>(e_);
    return std::move(v_);
  }

  constexpr E& error() & noexcept { return e_; }
  constexpr const E& error() const& noexcept { return e_; }
  constexpr E&& error() && noexcept { return std::move(e_); }

 private:
  void destroy() noexcept {
    if (has_) std::destroy_at(&v_);
    else std::destroy_at(&e_);
  }

  union {
    T v_;
    E e_;
  };
  bool has_;
};

template <class E>
class expected<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  constexpr expected() noexcept : has_(true) {}
  expected(const expected& o) : has_(o.has_) {
    if (!has_) std::construct_at(&e_, o.e_);
  }
  expected(expected&& o) noexcept(is_nothrow_move_constructible_v<E>) : has_(o.has_) {
    if (!has_) std::construct_at(&e_, std::move(o.e_));
  }
  template <class G>
  expected(const unexpected<G>& u) : has_(false) {  // NOLINT
    std::construct_at(&e_, u.error());
  }
  template <class G>
  expected(unexpected<G>&& u) : has_(false) {  // NOLINT
    std::construct_at(&e_, std::move(u).error());
  }
  ~expected() {
    if (!has_) std::destroy_at(&e_);
  }
  expected& operator=(const expected& o) {
    if (this != &o) {
      if (!has_) std::destroy_at(&e_);
      has_ = o.has_;
      if (!has_) std::construct_at(&e_, o.e_);
    }
    return *this;
  }
  expected& operator=(expected&& o) noexcept(is_nothrow_move_constructible_v<E>) {
    if (this != &o) {
      if (!has_) std::destroy_at(&e_);
      has_ = o.has_;
      if (!has_) std::construct_at(&e_, std::move(o.e_));
    }
    return *this;
  }

  constexpr bool has_value() const noexcept { return has_; }
  constexpr explicit operator bool() const noexcept { return has_; }
  constexpr void operator*() const noexcept {}
  void value() const {
    if (!has_) throw bad_expected_access<E>(e_);
  }
  constexpr E& error() & noexcept { return e_; }
  constexpr const E& error() const& noexcept { return e_; }
  constexpr E&& error() && noexcept { return std::move(e_); }

 private:
  union {
    E e_;
  };
  bool has_;
};

}  // namespace std

#endif  // !__cpp_lib_expected
