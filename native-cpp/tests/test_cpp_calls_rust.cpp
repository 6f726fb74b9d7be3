// C++ awaiting async calls exported by Rust (bridge.h "Section - Async calls exported by Rust")
// through the Asio importer of continuation-polled futures (poc/future.hpp). This executable links
// the C++ library and the Rust staticlib, like libpoc_native.so does.
#include <poc/bridge.h>
#include <poc/future.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using result = std::expected<poc::message, poc::call_error>;

/// An io_context run by one thread for the duration of a test.
class CppCallsRust : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    thread_.join();
  }

  /// Awaits `f` with poc::async_call on the io_context; bounded.
  result call(poc_future f) {
    auto done = asio::co_spawn(io_, poc::async_call(f), asio::use_future);
    if (done.wait_for(30s) != std::future_status::ready) {
      ADD_FAILURE() << "the async call did not complete within 30 s";
      return std::unexpected(poc::call_error{poc::errc::invalid, 0, "timeout"});
    }
    return done.get();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
};

std::string text(const poc::message& m) { return std::string(poc::error_text(m)); }

TEST_F(CppCallsRust, FetchUser_KnownId_ReturnsTheUser) {
  poc_future f{};
  ASSERT_EQ(poc_rust_fetch_user(42, &f), POC_OK);
  const result r = call(f);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(r->id, 42u);
  EXPECT_EQ(text(*r), "ada");
}

TEST_F(CppCallsRust, FetchUser_UnknownId_IsAnErrorWithCodeAndText) {
  poc_future f{};
  ASSERT_EQ(poc_rust_fetch_user(7, &f), POC_OK);
  const result r = call(f);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, poc::errc::error);
  EXPECT_EQ(r.error().id, 404u);
  EXPECT_NE(r.error().text.find("not found"), std::string::npos) << r.error().text;
}

TEST_F(CppCallsRust, FetchUser_PanicInTheRustFuture_IsContained) {
  poc_future f{};
  ASSERT_EQ(poc_rust_fetch_user(-1, &f), POC_OK);
  const result r = call(f);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, poc::errc::panic);
  // The process is still fine: the next call works.
  ASSERT_EQ(poc_rust_fetch_user(1, &f), POC_OK);
  const result again = call(f);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(text(*again), "alice");
}

TEST_F(CppCallsRust, Database_InsertsAreSerialisedAndQueryReturnsThem) {
  uint64_t db = 0;
  ASSERT_EQ(poc_rust_database_connect("mem://cpp-test", &db), POC_OK);
  const std::vector<std::string> rows{"one", "two", "three"};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    poc_future f{};
    ASSERT_EQ(poc_rust_database_insert(db, rows[i].c_str(), &f), POC_OK);
    const result r = call(f);
    ASSERT_TRUE(r.has_value()) << r.error().text;
    EXPECT_EQ(r->id, i + 1) << "row count after insert " << i;
  }
  poc_future q{};
  ASSERT_EQ(poc_rust_database_query(db, "SELECT * FROM rows", &q), POC_OK);
  const result r = call(q);
  ASSERT_TRUE(r.has_value()) << r.error().text;
  EXPECT_EQ(r->id, 3u);
  EXPECT_EQ(text(*r), "one\ntwo\nthree");
  poc_future bad{};
  ASSERT_EQ(poc_rust_database_query(db, "DROP TABLE rows", &bad), POC_OK);
  const result e = call(bad);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().id, 400u);
  EXPECT_EQ(poc_rust_database_free(db), POC_OK);
  EXPECT_EQ(poc_rust_database_free(db), POC_INVALID);
}

TEST_F(CppCallsRust, SyncAll_CancelledThroughTheCancellationSlot_StopsBeforeTheEnd) {
  poc_rust_runtime* rt = nullptr;
  ASSERT_EQ(poc_rust_runtime_new(1, &rt), POC_OK);
  constexpr uint32_t steps = 100000;
  poc_future f{};
  ASSERT_EQ(poc_rust_sync_all(rt, steps, 1, &f), POC_OK);
  const uint64_t handle = f.handle;

  asio::cancellation_signal signal;
  std::promise<std::error_code> outcome;
  asio::post(io_, [&] {
    poc::async_await(f, io_.get_executor(),
                     asio::bind_cancellation_slot(signal.slot(),
                                                  [&](std::error_code ec, poc::message) {
                                                    outcome.set_value(ec);
                                                  }));
  });
  // Wait (bounded) until the Rust task made progress: the future is alive until it completes.
  uint64_t done = 0;
  uint32_t running = 1;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (done < 3 && std::chrono::steady_clock::now() < deadline) {
    ASSERT_EQ(poc_rust_sync_progress(handle, &done, &running), POC_OK);
    std::this_thread::yield();
  }
  ASSERT_GE(done, 3u) << "sync_all made no progress within 30 s";
  asio::post(io_, [&] { signal.emit(asio::cancellation_type::terminal); });
  auto ec = outcome.get_future();
  ASSERT_EQ(ec.wait_for(30s), std::future_status::ready) << "the cancelled call did not complete";
  EXPECT_EQ(ec.get(), asio::error::operation_aborted);
  // The importer released the future when it completed: its handle is stale now.
  EXPECT_EQ(poc_rust_sync_progress(handle, &done, &running), POC_INVALID);
  EXPECT_LT(done, steps) << "sync_all ran to the end despite the cancel";
  EXPECT_EQ(poc_rust_runtime_shutdown(rt), POC_OK);
  poc_rust_runtime_free(rt);
}

}  // namespace
