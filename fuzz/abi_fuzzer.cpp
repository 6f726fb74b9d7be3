// ABI-misuse fuzzer for bridge.h (fuzz/README.md has the input format and the op table).
//
// Each input is a small program of operations over a state machine: C++ and Rust runtimes,
// channels and their ports, futures, lent functions, agents and Rust databases. Pools keep live
// AND released objects, so stale handles are reused; handles are also forged (0, random bits,
// another exporter's tag, the right tag with a wrong generation, another kind of handle). Every
// call's status is checked against what bridge.h allows for it in the state the harness models;
// every completion, wake, deliver and done callback is counted (exactly once per PENDING, never
// for anything else) and checked for its cause (CANCELLED only after a cancel or a release of
// the issuing port, CLOSED only after a close, SHUTDOWN only after a shutdown); every message
// received is checked against the messages sent (content, channel, at most once, never one that
// the exporter reported as not enqueued). At the end of each input the harness releases
// everything it still owns, frees the runtimes it created, waits (bounded) for every owed
// callback and for the C++ live-future count to return to 0, and checks the tallies.
// LeakSanitizer runs after inputs that allocated more than they freed and at exit.
//
// What the harness never does (undefined behaviour the contract leaves to the caller): call
// through a freed runtime pointer, call or release a poc_async_fn after releasing it (its
// context is freed), pass a view whose bytes are not readable unless its length is over the
// channel's limit (bridge.h: a bad size is answered INVALID before anything is read), poll the
// same future from two threads at once, or release a port while another thread is inside a call
// on it (callbacks' re-entrant calls only use try_send/try_recv/cancel/close).
//
// Violations print "POC FUZZ VIOLATION: ..." and abort(), which libFuzzer reports as a crash.
#include <poc/bridge.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

// The C++ exporter's live-future count (native-cpp/src/future_export.hpp). Not a bridge.h export:
// the fuzzer links the static library and reads it for its leak check.
namespace poc::detail {
std::size_t cpp_future_count() noexcept;
}

namespace {

using clock_type = std::chrono::steady_clock;

// ================================================================================================
// Reporting
// ================================================================================================

bool g_trace = false;  // POC_FUZZ_TRACE=1: print every op (for reproducing a crash)
std::string g_where;   // the op being run (for violation messages)

[[noreturn]] __attribute__((format(printf, 1, 2))) void violation(const char* fmt, ...) {
  std::fprintf(stderr, "\n==POC FUZZ VIOLATION== ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n  (during: %s)\n", g_where.c_str());
  std::fflush(stderr);
  std::abort();
}

void trace(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void trace(const char* fmt, ...) {
  if (!g_trace) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

constexpr std::uint32_t B(poc_status s) { return 1u << s; }

std::string mask_str(std::uint32_t m) {
  std::string s;
  for (int i = 0; i < 10; ++i)
    if (m & (1u << i)) {
      if (!s.empty()) s += "|";
      s += poc_status_str(i);
    }
  return s.empty() ? "(nothing)" : s;
}

void check(poc_status got, std::uint32_t allowed, const char* what) {
  if (got < 0 || got > 9 || !(allowed & B(got)))
    violation("%s returned %d (%s); bridge.h allows here: %s", what, got, poc_status_str(got),
              mask_str(allowed).c_str());
}

// ================================================================================================
// Input reader: bytes from the front, zeros once exhausted
// ================================================================================================

struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  bool empty() const { return n == 0; }
  std::uint8_t u8() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint32_t u32() { return u16() | (static_cast<std::uint32_t>(u16()) << 16); }
  std::uint64_t u64() { return u32() | (static_cast<std::uint64_t>(u32()) << 32); }
};

// ================================================================================================
// Models
// ================================================================================================

struct RtModel {
  bool cpp = true;
  bool persistent = false;
  poc_cpp_runtime* c = nullptr;
  poc_rust_runtime* r = nullptr;
  std::atomic<bool> shutdown_requested{false};  // set before shutdown/free: SHUTDOWN allowed
  bool freed = false;                            // the pointer must not be used any more
  bool stopping() const { return shutdown_requested.load(); }
};
using RtP = std::shared_ptr<RtModel>;

struct ChanModel {
  int idx = 0;
  bool cpp = true;
  RtP rt;
  std::size_t capacity = 1;
  std::size_t max_payload = POC_DEFAULT_MAX_PAYLOAD;
  std::atomic<bool> close_requested{false};  // CLOSED completions allowed from now on
  bool closed_for_send = false;              // known closed for sends (harness thread)
  bool rx_closed = false;                    // receiver closed or released (harness thread)
  int live_senders = 1;                      // sender ports that are not released
  std::atomic<int> inflight{0};              // ops that may still complete
  std::atomic<std::int64_t> enq{0}, deq{0};  // messages known enqueued / dequeued
  std::atomic<bool> racy{false};             // re-entrant callbacks act on it: no exact model
  std::atomic<bool> agents{false};           // an agent holds a port: no exact model, no ids
  bool exact() const { return inflight.load() == 0 && !racy.load() && !agents.load(); }
  std::int64_t queued() const { return enq.load() - deq.load(); }
};
using ChanP = std::shared_ptr<ChanModel>;

struct PortModel {
  bool sender = true;
  std::uint64_t handle = 0;
  const void* vtable = nullptr;
  ChanP chan;
  bool live = true;   // owned by the harness and not released
  bool given = false; // handed to an agent: neither live nor stale for the harness
  std::atomic<bool> release_requested{false};
  std::vector<poc_op_id> ops;  // ids its PENDING ops got (never reused by a port)
};
using PortP = std::shared_ptr<PortModel>;

enum class FutKind : std::uint8_t {
  fetch_user, load_config, db_query, db_insert, sync_all, delayed_square, square_call, rust_sum,
  cpp_sum, scripted
};
const char* fut_kind_name(FutKind k) {
  static const char* names[] = {"fetch_user", "load_config", "db_query", "db_insert", "sync_all",
                                "delayed_square", "square_call", "rust_sum", "cpp_sum", "scripted"};
  return names[static_cast<int>(k)];
}

/// What a finished square / sum_calls computation must answer (bridge.h "square").
struct Expect {
  poc_status status = POC_OK;
  std::uint64_t id = 0;
  std::string data;
  bool check_data = false;
  bool any = false;  // outcome not predictable (scripted lender): only the status set is checked
};

struct FutModel {
  poc_future f{};
  bool cpp = false;  // exported by the C++ side
  FutKind kind = FutKind::fetch_user;
  std::vector<RtP> rts;  // SHUTDOWN / 502 allowed once one of them is shutting down
  Expect expect;         // for kinds whose outcome is predictable
  bool live = true;
  bool cancel_requested = false;
  bool final_answered = false;  // poll answered OK/ERROR/PANIC/SHUTDOWN: later polls INVALID
  bool cancelled_answered = false;
  bool rt_stop_matters() const {
    for (const RtP& r : rts)
      if (r->stopping()) return true;
    return false;
  }
};
using FutP = std::shared_ptr<FutModel>;

/// A lent function the harness owns (poc_cpp_square_fn / poc_rust_square_fn).
struct FnModel {
  poc_async_fn f{};
  bool cpp = false;
  std::uint32_t mode = POC_SQUARE_READY;
  RtP rt;  // may be null (Rust READY)
  bool live = true;
};
using FnP = std::shared_ptr<FnModel>;

// ---- operation records: the `user` of every callback ------------------------------------------

enum class RecKind : std::uint8_t { send, recv, try_recv, poll, agent };

struct OpRec {
  RecKind kind = RecKind::send;
  int seq = 0;  // op number in the input, for messages
  std::atomic<int> fired{0};      // on_complete / wake / done: counted on entry
  // The callback's last action (release): after it, the callback no longer touches this record or
  // its channel model. The end of an input waits for this, not for `fired` — a callback that has
  // started may still be using both (found by scripts/stress: a heap-use-after-free of the model
  // freed by finish_input while a C++ runtime thread was still in cb_recv_complete).
  std::atomic<int> finished{0};
  std::atomic<int> delivered{0};  // deliver (synchronous)
  std::atomic<int> status{-1};    // the completion's status
  poc_status returned = -1;
  std::atomic<bool> has_returned{false};
  std::atomic<bool> cancel_requested{false};
  ChanP chan;
  PortP port;
  FutP fut;
  std::uint64_t msg_id = 0;
  poc_op_id op_slot = 0;  // the exporter writes *op here
  // re-entrant action of the callback (0 = none)
  std::uint8_t reenter = 0;
  poc_sender re_tx{};
  poc_receiver re_rx{};
  std::uint64_t re_msg_id = 0;
  // poll: the value delivered
  poc_status dstatus = -1;
  std::uint64_t did = 0;
  std::string ddata;
  bool d_null_msg = false;
};

// ---- harness lender: a poc_async_fn with scripted behaviour ------------------------------------

struct ScriptFn {
  std::uint8_t script = 0;
  std::atomic<int> released{0};
  std::atomic<int> calls{0};
  bool null_call = false;
  bool null_release = false;
  bool taken = false;  // handed to a sum_calls: must be released exactly once by it
};

// ---- harness futures: a minimal exporter with scripted answers (tag 0x48 'H') -----------------

struct HFut {
  std::uint8_t script = 0;
  std::uint64_t x = 0;
  int polls = 0;
  int released = 0;
  bool answered = false;
};

std::mutex g_hf_mu;
std::vector<HFut> g_hfuts;  // index = handle & 0xFFFFFFFF; cleared per input (after checks)
constexpr std::uint64_t kHTag = 0x48;

// ---- the message registry ------------------------------------------------------------------------

struct MsgInfo {
  const ChanModel* chan = nullptr;
  std::size_t len = 0;
  bool received = false;
  bool rejected = false;  // the exporter said it was not enqueued
};
std::mutex g_msg_mu;
std::unordered_map<std::uint64_t, MsgInfo> g_msgs;
std::atomic<std::uint64_t> g_next_msg{1};

constexpr std::size_t kBig = POC_DEFAULT_MAX_PAYLOAD + 64;
std::uint8_t* g_big = nullptr;  // kBig bytes, byte i = (uint8_t)(i * 7 + 3)

// ================================================================================================
// Global (persistent) and per-input state
// ================================================================================================

struct Global {
  RtP cpp_p, rust_p;
  const poc_sender_vtable* stx[2] = {};    // [0] C++, [1] Rust
  const poc_receiver_vtable* rtx[2] = {};
  const poc_future_vtable* fvt[2] = {};
  std::thread::id main_thread;
  // stale handles from earlier inputs: {handle, kind (0 sender, 1 receiver, 2 future), cpp}
  struct Stale {
    std::uint64_t h;
    int kind;
    bool cpp;
  };
  std::vector<Stale> old_stale;
  std::uint64_t inputs = 0;
};
// Never destroyed: the persistent runtimes stay reachable (and running) until the process ends,
// also while LeakSanitizer's exit check runs after static destructors.
Global& G = *new Global;

struct AgentRec {
  RtP rt;
  poc_agent_id id = 0;
  bool have_id = false;
  OpRec* rec = nullptr;
};

struct DbRec {
  std::uint64_t h = 0;
  bool live = true;
};

struct State {
  RtP cpp_e, rust_e;  // ephemeral runtimes (null when none)
  int rt_created[2] = {0, 0};
  std::vector<RtP> all_rts;
  std::vector<ChanP> chans;
  std::vector<PortP> ports;
  std::vector<FutP> futs;
  std::vector<FnP> fns;
  std::vector<std::unique_ptr<OpRec>> recs;
  std::vector<AgentRec> agents;
  std::vector<DbRec> dbs;
  std::vector<std::unique_ptr<ScriptFn>> sfns;
  int big_payloads = 0;
  int op = 0;
};
State& S = *new State;

constexpr int kMaxOps = 192;
constexpr int kMaxChans = 16;
constexpr int kMaxPorts = 48;
constexpr int kMaxFuts = 48;
constexpr int kMaxFns = 16;
constexpr int kMaxAgents = 6;

thread_local int t_in_call = 0;          // inside a harness call that may deliver synchronously
thread_local const void* t_call_user = nullptr;

struct InCall {
  const void* saved;
  explicit InCall(const void* user) : saved(t_call_user) {
    ++t_in_call;
    t_call_user = user;
  }
  ~InCall() {
    --t_in_call;
    t_call_user = saved;
  }
};

bool on_main_thread() { return std::this_thread::get_id() == G.main_thread; }

OpRec* new_rec(RecKind k) {
  S.recs.push_back(std::make_unique<OpRec>());
  OpRec* r = S.recs.back().get();
  r->kind = k;
  r->seq = S.op;
  return r;
}

// ================================================================================================
// Messages
// ================================================================================================

std::uint64_t register_msg(const ChanModel* c, std::size_t len) {
  const std::uint64_t id = g_next_msg.fetch_add(1);
  std::lock_guard lock(g_msg_mu);
  g_msgs[id] = MsgInfo{c, len, false, false};
  return id;
}

void reject_msg(std::uint64_t id, const char* why) {
  std::lock_guard lock(g_msg_mu);
  auto it = g_msgs.find(id);
  if (it == g_msgs.end()) return;
  if (it->second.received)
    violation("message %" PRIu64 " was received although its send reported %s (not enqueued)", id,
              why);
  it->second.rejected = true;
}

/// A message handed to the importer (deliver or completion with POC_OK).
void validate_received(ChanModel* c, const poc_message_view* msg, const char* who) {
  if (msg == nullptr) violation("%s: POC_OK with a NULL message", who);
  if (msg->data == nullptr && msg->len != 0)
    violation("%s: message with NULL data and len %zu", who, msg->len);
  if (c->agents.load()) return;  // agents send their own messages and consume ours
  std::lock_guard lock(g_msg_mu);
  auto it = g_msgs.find(msg->id);
  if (it == g_msgs.end())
    violation("%s: received message id %" PRIu64 " that was never sent", who, msg->id);
  MsgInfo& m = it->second;
  if (m.chan != c)
    violation("%s: message %" PRIu64 " arrived on channel %d, it was sent on channel %d", who,
              msg->id, c->idx, m.chan->idx);
  if (m.received) violation("%s: message %" PRIu64 " received twice", who, msg->id);
  if (m.rejected)
    violation("%s: message %" PRIu64 " received although its send reported it not enqueued", who,
              msg->id);
  if (m.len != msg->len)
    violation("%s: message %" PRIu64 " has %zu bytes, %zu were sent", who, msg->id, msg->len, m.len);
  if (msg->len != 0 && std::memcmp(msg->data, g_big, msg->len) != 0)
    violation("%s: message %" PRIu64 " payload corrupted", who, msg->id);
  m.received = true;
}

// ================================================================================================
// Callbacks
// ================================================================================================

extern "C" void cb_sink_deliver(void* user, poc_status st, const poc_message_view* msg) {
  auto* c = static_cast<ChanModel*>(user);
  if (st != POC_OK) violation("re-entrant try_recv: deliver with status %d", st);
  validate_received(c, msg, "re-entrant try_recv deliver");
  c->deq.fetch_add(1);
}

/// The re-entrant action of a callback (bridge.h rule 4: a callback may call any function).
void reenter(OpRec* r) {
  if (r->reenter == 0 || r->chan == nullptr) return;
  ChanModel* c = r->chan.get();
  const std::uint32_t send_ok = B(POC_OK) | B(POC_FULL) | B(POC_CLOSED) | B(POC_SHUTDOWN) | B(POC_INVALID);
  switch (r->reenter) {
    case 1:
      if (r->re_tx.vtable != nullptr) {
        const poc_message_view v{r->re_msg_id, g_big, 3};
        const poc_status s = r->re_tx.vtable->try_send(r->re_tx.handle, &v);
        check(s, send_ok, "re-entrant try_send");
        if (s == POC_OK) c->enq.fetch_add(1);
        else reject_msg(r->re_msg_id, poc_status_str(s));
      }
      break;
    case 2:
      if (r->re_rx.vtable != nullptr) {
        const poc_status s = r->re_rx.vtable->try_recv(r->re_rx.handle, &cb_sink_deliver, c);
        check(s, B(POC_OK) | B(POC_EMPTY) | B(POC_CLOSED) | B(POC_SHUTDOWN) | B(POC_INVALID),
              "re-entrant try_recv");
      }
      break;
    case 3:
      if (r->port != nullptr) {
        const poc_status s =
            r->port->sender
                ? static_cast<const poc_sender_vtable*>(r->port->vtable)->cancel(r->port->handle, r->op_slot)
                : static_cast<const poc_receiver_vtable*>(r->port->vtable)->cancel(r->port->handle, r->op_slot);
        check(s, B(POC_OK) | B(POC_SHUTDOWN) | B(POC_INVALID), "re-entrant cancel of a completed op");
      }
      break;
    case 4:
      if (r->re_tx.vtable != nullptr) {
        const poc_status s = r->re_tx.vtable->close(r->re_tx.handle);
        check(s, B(POC_OK) | B(POC_SHUTDOWN) | B(POC_INVALID), "re-entrant sender close");
      }
      break;
    default:
      break;
  }
}

extern "C" void cb_send_complete(void* user, poc_status st) {
  auto* r = static_cast<OpRec*>(user);
  if (r->kind != RecKind::send) violation("send completion called with a foreign user pointer");
  if (r->chan == nullptr) violation("send completion for a send that was refused (bad handle)");
  if (r->fired.fetch_add(1) != 0) violation("send completion called twice (op %" PRIu64 ")", r->op_slot);
  if (__atomic_load_n(&r->op_slot, __ATOMIC_ACQUIRE) == 0)
    violation("send completion ran before *op was written");
  ChanModel* c = r->chan.get();
  switch (st) {
    case POC_OK:
      c->enq.fetch_add(1);
      break;
    case POC_CANCELLED:
      if (!r->cancel_requested.load() && !r->port->release_requested.load())
        violation("send completed CANCELLED without a cancel of its op or a release of its port");
      reject_msg(r->msg_id, "CANCELLED");
      break;
    case POC_CLOSED:
      if (!c->close_requested.load()) violation("send completed CLOSED but nothing closed the channel");
      reject_msg(r->msg_id, "CLOSED");
      break;
    case POC_SHUTDOWN:
      if (!c->rt->stopping()) violation("send completed SHUTDOWN but its runtime is not shutting down");
      reject_msg(r->msg_id, "SHUTDOWN");
      break;
    default:
      violation("send completion with status %d (%s)", st, poc_status_str(st));
  }
  r->status.store(st);
  reenter(r);
  c->inflight.fetch_sub(1);
  r->finished.fetch_add(1, std::memory_order_release);
}

extern "C" void cb_recv_deliver(void* user, poc_status st, const poc_message_view* msg) {
  auto* r = static_cast<OpRec*>(user);
  if (r->kind != RecKind::recv && r->kind != RecKind::try_recv)
    violation("recv deliver called with a foreign user pointer");
  if (!on_main_thread() || t_in_call == 0 || t_call_user != user)
    violation("deliver called outside the recv/try_recv that was given it (it must be synchronous)");
  if (st != POC_OK) violation("deliver called with status %d", st);
  if (r->chan == nullptr) violation("deliver called by a recv/try_recv that was refused (bad handle)");
  if (r->delivered.fetch_add(1) != 0) violation("deliver called twice for one call");
  validate_received(r->chan.get(), msg, "deliver");
  r->chan->deq.fetch_add(1);
  reenter(r);
}

extern "C" void cb_recv_complete(void* user, poc_status st, const poc_message_view* msg) {
  auto* r = static_cast<OpRec*>(user);
  if (r->kind != RecKind::recv) violation("recv completion called with a foreign user pointer");
  if (r->chan == nullptr) violation("recv completion for a recv that was refused (bad handle)");
  if (r->fired.fetch_add(1) != 0) violation("recv completion called twice (op %" PRIu64 ")", r->op_slot);
  if (__atomic_load_n(&r->op_slot, __ATOMIC_ACQUIRE) == 0)
    violation("recv completion ran before *op was written");
  ChanModel* c = r->chan.get();
  switch (st) {
    case POC_OK:
      validate_received(c, msg, "recv completion");
      c->deq.fetch_add(1);
      break;
    case POC_CANCELLED:
      if (!r->cancel_requested.load()) violation("recv completed CANCELLED without a cancel of its op");
      if (msg != nullptr) violation("recv completion CANCELLED with a message");
      break;
    case POC_CLOSED:
      if (!c->close_requested.load()) violation("recv completed CLOSED but nothing closed the channel");
      if (msg != nullptr) violation("recv completion CLOSED with a message");
      break;
    case POC_SHUTDOWN:
      if (!c->rt->stopping()) violation("recv completed SHUTDOWN but its runtime is not shutting down");
      if (msg != nullptr) violation("recv completion SHUTDOWN with a message");
      break;
    default:
      violation("recv completion with status %d (%s)", st, poc_status_str(st));
  }
  r->status.store(st);
  reenter(r);
  c->inflight.fetch_sub(1);
  r->finished.fetch_add(1, std::memory_order_release);
}

extern "C" void cb_wake(void* user) {
  auto* r = static_cast<OpRec*>(user);
  if (r->kind != RecKind::poll) violation("wake called with a foreign user pointer");
  if (r->fired.fetch_add(1) != 0) violation("wake called twice for one PENDING poll");
  r->finished.fetch_add(1, std::memory_order_release);
}

extern "C" void cb_poll_deliver(void* user, poc_status st, const poc_message_view* msg) {
  auto* r = static_cast<OpRec*>(user);
  if (r->kind != RecKind::poll) violation("poll deliver called with a foreign user pointer");
  if (!on_main_thread() || t_in_call == 0 || t_call_user != user)
    violation("poll's deliver called outside the poll that was given it (it must be synchronous)");
  if (st != POC_OK && st != POC_ERROR && st != POC_PANIC)
    violation("poll's deliver called with status %d (%s)", st, poc_status_str(st));
  if (r->delivered.fetch_add(1) != 0) violation("poll's deliver called twice");
  r->dstatus = st;
  if (msg == nullptr) {
    r->d_null_msg = true;
    return;
  }
  if (msg->data == nullptr && msg->len != 0) violation("poll's deliver: NULL data with len %zu", msg->len);
  r->did = msg->id;
  r->ddata.assign(reinterpret_cast<const char*>(msg->data), msg->len);
}

extern "C" void cb_agent_done(void* user, const poc_agent_report* rep) {
  auto* r = static_cast<OpRec*>(user);
  if (r->kind != RecKind::agent) violation("agent done called with a foreign user pointer");
  if (rep == nullptr) violation("agent done called with a NULL report");
  if (r->fired.fetch_add(1) != 0) violation("agent done called twice");
  r->status.store(rep->status);
  r->finished.fetch_add(1, std::memory_order_release);
}

// ---- the scripted lender and its futures ------------------------------------------------------

poc_status hf_poll(std::uint64_t h, poc_wake_fn wake, poc_recv_complete_fn deliver, void* user);
poc_status hf_cancel(std::uint64_t h);
poc_status hf_release(std::uint64_t h);
const poc_future_vtable kHVtable{POC_ABI_VERSION, sizeof(poc_future_vtable), &hf_poll, &hf_cancel,
                                 &hf_release};

HFut* hf_find(std::uint64_t h) {
  if ((h >> 56) != kHTag) return nullptr;
  const std::size_t i = static_cast<std::uint32_t>(h);
  return i < g_hfuts.size() ? &g_hfuts[i] : nullptr;
}

poc_status hf_poll(std::uint64_t h, poc_wake_fn wake, poc_recv_complete_fn deliver, void* user) {
  poc_status answer;
  std::uint64_t id = 0;
  bool wake_now = false;
  {
    std::lock_guard lock(g_hf_mu);
    HFut* f = hf_find(h);
    if (f == nullptr) violation("an importer polled a future handle the lender never gave out");
    if (f->released != 0) violation("an importer polled a future after releasing it");
    if (wake == nullptr || deliver == nullptr) violation("an importer polled with a NULL wake/deliver");
    if (f->answered) return POC_INVALID;
    ++f->polls;
    switch (f->script % 6) {
      case 0: answer = POC_OK; break;
      case 1:  // PENDING once, woken inside the poll (bridge.h allows the wake before PENDING returns)
        if (f->polls == 1) {
          answer = POC_PENDING;
          wake_now = true;
        } else {
          answer = POC_OK;
        }
        break;
      case 2: answer = POC_ERROR; break;
      case 3: answer = POC_PANIC; break;
      case 4: answer = POC_SHUTDOWN; break;
      default: answer = (f->script & 8) ? POC_INVALID : POC_CANCELLED; break;
    }
    if (answer != POC_PENDING) f->answered = true;
    id = f->x + 1;
  }
  if (wake_now) wake(user);
  if (answer == POC_OK || answer == POC_ERROR || answer == POC_PANIC) {
    static const char text[] = "scripted";
    const poc_message_view v{answer == POC_OK ? id : 77, reinterpret_cast<const std::uint8_t*>(text),
                             answer == POC_OK ? 0u : sizeof(text) - 1};
    deliver(user, answer, &v);
  }
  return answer;
}

poc_status hf_cancel(std::uint64_t h) {
  std::lock_guard lock(g_hf_mu);
  HFut* f = hf_find(h);
  if (f == nullptr || f->released != 0) return POC_INVALID;
  return POC_OK;
}

poc_status hf_release(std::uint64_t h) {
  std::lock_guard lock(g_hf_mu);
  HFut* f = hf_find(h);
  if (f == nullptr) return POC_INVALID;
  if (f->released++ != 0) violation("an importer released a future twice");
  return POC_OK;
}

extern "C" poc_status sfn_call(void* context, const poc_message_view* arg, poc_future* out) {
  auto* s = static_cast<ScriptFn*>(context);
  if (s->released.load() != 0) violation("a lent function was called after it was released");
  s->calls.fetch_add(1);
  if (arg == nullptr || out == nullptr) violation("a borrower called a lent function with NULL arg/out");
  switch (s->script % 5) {
    case 0: return POC_SHUTDOWN;
    case 1: return POC_PANIC;
    case 2: return 42;  // outside bridge.h: the borrower must cope (ERROR 502)
    case 3: {  // a Rust future: the borrower imports the other native exporter
      const poc_status st = poc_rust_fetch_user(1, out);
      if (st != POC_OK) violation("poc_rust_fetch_user(1) answered %d inside a lent call", st);
      return POC_OK;
    }
    default: {
      std::lock_guard lock(g_hf_mu);
      g_hfuts.push_back(HFut{static_cast<std::uint8_t>(s->script / 5), arg->id, 0, 0, false});
      *out = poc_future{(kHTag << 56) | (g_hfuts.size() - 1), &kHVtable};
      return POC_OK;
    }
  }
}

extern "C" void sfn_release(void* context) {
  auto* s = static_cast<ScriptFn*>(context);
  if (s->released.fetch_add(1) != 0) violation("a borrower released a lent function twice");
}

// ================================================================================================
// Selection helpers
// ================================================================================================

template <typename T, typename Pred>
std::shared_ptr<T> pick(const std::vector<std::shared_ptr<T>>& v, std::uint8_t b, Pred pred) {
  std::vector<const std::shared_ptr<T>*> c;
  for (const auto& x : v)
    if (pred(*x)) c.push_back(&x);
  if (c.empty()) return nullptr;
  return *c[b % c.size()];
}

/// A runtime argument: persistent, ephemeral (if alive) or NULL. Never a freed one.
RtP pick_rt(std::uint8_t b, bool cpp) {
  const RtP& e = cpp ? S.cpp_e : S.rust_e;
  switch (b % 4) {
    case 1:
      if (e && !e->freed) return e;
      return cpp ? G.cpp_p : G.rust_p;
    case 2: return nullptr;
    default: return cpp ? G.cpp_p : G.rust_p;
  }
}

// Handle layouts (handle_table.hpp, export/handles.rs, future/table.rs).
std::uint64_t cpp_tag(int kind) { return 0xC0u | static_cast<unsigned>(kind); }  // 1 tx, 2 rx, 3 future
bool is_known_tag(std::uint64_t top) {
  return top == 0xC1 || top == 0xC2 || top == 0xC3 || top == 0x52 || top == 0x46 || top == 0x44 ||
         top == kHTag;
}
std::uint64_t wrong_generation(std::uint64_t h, bool cpp, std::uint32_t r) {
  if (cpp) {
    const std::uint64_t gen = (h >> 32) & 0xFFFFFF;
    const std::uint64_t ng = gen ^ (1 + r % 0xFFFFFE);
    return (h & ~(0xFFFFFFull << 32)) | ((ng & 0xFFFFFF) << 32);
  }
  const std::uint32_t gen = static_cast<std::uint32_t>(h);
  const std::uint32_t ng = gen ^ (1 + r % 0xFFFFFFFE);
  return (h & ~0xFFFFFFFFull) | ng;
}
/// Right tag, but generation 0 or an index far beyond any slot.
std::uint64_t structured_invalid(int kind /*0 tx 1 rx 2 fut*/, bool cpp, std::uint8_t b) {
  if (cpp) {
    const std::uint64_t tag = cpp_tag(kind + 1) << 56;
    switch (b % 3) {
      case 0: return tag | (0ull << 32) | 1;              // generation 0
      case 1: return tag | (1ull << 32) | 0;              // index + 1 == 0
      default: return tag | (1ull << 32) | 0xFFFFFFF0u;  // index out of range
    }
  }
  const std::uint64_t tag = (kind == 2 ? 0x46ull : 0x52ull) << 56;
  switch (b % 2) {
    case 0: return tag | (0ull << 32) | 0;                // generation 0
    default: return tag | (0xFFFFF0ull << 32) | 1;       // index out of range
  }
}

/// One handle to call a vtable with, and which exporter's vtable.
struct Pick {
  std::uint64_t handle = 0;
  bool cpp = true;   // call the C++ exporter's vtable (else the Rust one)
  PortP port;        // set: a live port of the right kind that the harness owns
  FutP fut;          // set: a live future the harness owns
  bool strict = true;  // the handle is certainly not live for that vtable: INVALID
  const char* how = "";
};

/// kind: 0 sender, 1 receiver, 2 future.
Pick pick_handle(Reader& in, int kind) {
  Pick p;
  const std::uint8_t b = in.u8();
  const std::uint8_t i = in.u8();
  auto live_port = [&](bool sender) {
    return pick(S.ports, i, [&](const PortModel& m) { return m.live && m.sender == sender; });
  };
  auto live_fut = [&]() { return pick(S.futs, i, [](const FutModel& m) { return m.live; }); };
  switch (b % 12) {
    default:  // 0..3: a live object of the right kind
      if (kind == 2) {
        if (FutP f = live_fut()) {
          p.fut = f;
          p.handle = f->f.handle;
          p.cpp = f->cpp;
          p.strict = false;
          p.how = "live";
          return p;
        }
      } else if (PortP pt = live_port(kind == 0)) {
        p.port = pt;
        p.handle = pt->handle;
        p.cpp = pt->chan->cpp;
        p.strict = false;
        p.how = "live";
        return p;
      }
      p.handle = 0;
      p.cpp = b & 1;
      p.how = "0 (no live object)";
      return p;
    case 4: {  // stale (released) — this input or an earlier one
      std::vector<std::pair<std::uint64_t, bool>> c;
      if (kind == 2) {
        for (const FutP& f : S.futs)
          if (!f->live) c.emplace_back(f->f.handle, f->cpp);
      } else {
        for (const PortP& pt : S.ports)
          if (!pt->live && !pt->given && pt->sender == (kind == 0)) c.emplace_back(pt->handle, pt->chan->cpp);
      }
      for (const auto& s : G.old_stale)
        if (s.kind == kind) c.emplace_back(s.h, s.cpp);
      if (!c.empty()) {
        const auto& x = c[i % c.size()];
        p.handle = x.first;
        p.cpp = x.second;
        p.how = "stale";
        return p;
      }
      p.handle = 0;
      p.cpp = b & 16;
      p.how = "0 (no stale object)";
      return p;
    }
    case 5: {  // a live object of another kind
      if (kind == 2) {
        if (PortP pt = pick(S.ports, i, [](const PortModel& m) { return m.live; })) {
          p.handle = pt->handle;
          p.cpp = pt->chan->cpp;
          p.how = "port handle to a future vtable";
          return p;
        }
      } else {
        if (PortP pt = live_port(kind != 0)) {
          p.handle = pt->handle;
          p.cpp = pt->chan->cpp;
          p.how = "other kind of port";
          return p;
        }
        if (FutP f = live_fut()) {
          p.handle = f->f.handle;
          p.cpp = f->cpp;
          p.how = "future handle to a port vtable";
          return p;
        }
      }
      p.handle = 0;
      p.cpp = b & 16;
      p.how = "0";
      return p;
    }
    case 6:
      p.handle = 0;
      p.cpp = b & 16;
      p.how = "0";
      return p;
    case 7: {  // random bits with a tag no exporter uses
      std::uint64_t h = in.u64();
      if (is_known_tag(h >> 56)) h ^= 0x80ull << 56;
      if (is_known_tag(h >> 56)) h ^= 0x01ull << 56;
      p.handle = h;
      p.cpp = b & 16;
      p.how = "random";
      return p;
    }
    case 8: {  // the right tag, a wrong generation (derived from a live handle)
      std::uint64_t h = 0;
      bool cpp = b & 16;
      if (kind == 2) {
        if (FutP f = live_fut()) {
          h = f->f.handle;
          cpp = f->cpp;
        }
      } else if (PortP pt = live_port(kind == 0)) {
        h = pt->handle;
        cpp = pt->chan->cpp;
      }
      p.handle = h == 0 ? 0 : wrong_generation(h, cpp, in.u32());
      p.cpp = cpp;
      p.how = "wrong generation";
      return p;
    }
    case 9: {  // a live object of the right kind, given to the other exporter's vtable
      if (kind == 2) {
        if (FutP f = live_fut()) {
          p.handle = f->f.handle;
          p.cpp = !f->cpp;
          p.how = "other exporter's future";
          return p;
        }
      } else if (PortP pt = live_port(kind == 0)) {
        p.handle = pt->handle;
        p.cpp = !pt->chan->cpp;
        p.how = "other exporter's port";
        return p;
      }
      p.handle = 0;
      p.cpp = b & 16;
      p.how = "0";
      return p;
    }
    case 10:
      p.cpp = b & 16;
      p.handle = structured_invalid(kind, p.cpp, in.u8());
      p.how = "right tag, generation 0 or index out of range";
      return p;
    case 11: {  // the other runtime's tag on this runtime's layout
      p.cpp = b & 16;
      const std::uint64_t low = in.u64() & 0x00FFFFFFFFFFFFFFull;
      p.handle = (p.cpp ? (0x52ull << 56) : (cpp_tag(kind + 1) << 56)) | low;
      p.how = "other runtime's tag";
      return p;
    }
  }
}

// ================================================================================================
// Message arguments
// ================================================================================================

struct MsgArg {
  poc_message_view v{};
  const poc_message_view* ptr = nullptr;
  bool bad = false;  // NULL, NULL data with len > 0, or over the limit: INVALID
  const char* how = "";
};

MsgArg make_msg(Reader& in, const ChanModel* c, std::uint64_t id) {
  MsgArg m;
  const std::size_t max = c != nullptr ? c->max_payload : POC_DEFAULT_MAX_PAYLOAD;
  const std::uint8_t s = in.u8();
  m.v.id = id;
  m.v.data = g_big;
  m.ptr = &m.v;
  auto small = [&] { return static_cast<std::size_t>(in.u8() % 65); };
  switch (s % 10) {
    case 0:
      m.ptr = nullptr;
      m.bad = true;
      m.how = "NULL msg";
      return m;
    case 1:
      m.v.data = nullptr;
      m.v.len = 0;
      m.how = "NULL data, len 0";
      break;
    case 2:
      m.v.data = nullptr;
      m.v.len = 1 + in.u8();
      m.bad = true;
      m.how = "NULL data, len > 0";
      return m;
    case 3:
    case 4:
      m.v.len = small();
      m.how = "small";
      break;
    case 5:  // exactly the limit
      if (max <= kBig && (max < 65536 || S.big_payloads < 2)) {
        m.v.len = max;
        if (max >= 65536) ++S.big_payloads;
      } else {
        m.v.len = small();
      }
      m.how = "len == max_payload";
      break;
    case 6:  // one over the limit (the bytes exist when the limit is small)
      if (max == SIZE_MAX) {
        m.v.len = small();
        m.how = "small";
        break;
      }
      m.v.len = max + 1;
      m.bad = true;
      m.how = "len == max_payload + 1";
      return m;
    case 7:  // far over the limit: only the length is wrong; the exporter must not read
      if (max == SIZE_MAX) {
        m.v.len = small();
        m.how = "small";
        break;
      }
      m.v.len = SIZE_MAX - (in.u8() % 2) * (SIZE_MAX / 2);
      m.bad = true;
      m.how = "len huge (not backed by bytes: over the limit)";
      return m;
    case 8:
      m.v.len = in.u16();
      m.how = "u16 len";
      break;
    default:
      m.v.len = in.u32() & 0x3FFFF;
      m.how = "u18 len";
      break;
  }
  if (m.v.len > max) m.bad = true;  // backed by g_big (kBig bytes) in every case above
  return m;
}

// ================================================================================================
// Port expectations
// ================================================================================================

std::uint32_t send_mask(const PortModel& p, const MsgArg& m, bool args_bad, bool is_try) {
  const ChanModel& c = *p.chan;
  const bool stopping = c.rt->stopping();
  std::uint32_t extra = 0;
  if (stopping) extra |= B(POC_SHUTDOWN);
  if (c.closed_for_send || c.close_requested.load()) extra |= B(POC_CLOSED);
  if (m.bad || args_bad) return B(POC_INVALID) | extra;
  if (stopping) return B(POC_SHUTDOWN);
  if (c.closed_for_send) return B(POC_CLOSED);
  if (c.exact()) {
    const bool room = c.queued() < static_cast<std::int64_t>(std::min<std::size_t>(c.capacity, INT64_MAX));
    if (is_try) return room ? B(POC_OK) : B(POC_FULL);
    // A Rust send pump that was parked in reserve() may hold a permit for a moment after its
    // last op left: PENDING is tolerated where OK was expected; OK over capacity is not.
    return room ? (B(POC_OK) | B(POC_PENDING)) : B(POC_PENDING);
  }
  return (is_try ? (B(POC_OK) | B(POC_FULL)) : (B(POC_OK) | B(POC_PENDING))) | extra;
}

std::uint32_t recv_mask(const PortModel& p, bool args_bad, bool is_try) {
  const ChanModel& c = *p.chan;
  const bool stopping = c.rt->stopping();
  std::uint32_t extra = 0;
  if (stopping) extra |= B(POC_SHUTDOWN);
  if (c.rx_closed || c.closed_for_send || c.close_requested.load()) extra |= B(POC_CLOSED);
  if (args_bad) return B(POC_INVALID) | extra;
  if (stopping) return B(POC_SHUTDOWN);
  if (c.rx_closed) return B(POC_CLOSED);
  const std::uint32_t wait = is_try ? B(POC_EMPTY) : B(POC_PENDING);
  if (c.exact()) {
    if (c.queued() > 0) return B(POC_OK);
    return c.closed_for_send ? B(POC_CLOSED) : wait;
  }
  return B(POC_OK) | wait | extra;
}

const poc_sender_vtable* stx(bool cpp) { return G.stx[cpp ? 0 : 1]; }
const poc_receiver_vtable* rtx(bool cpp) { return G.rtx[cpp ? 0 : 1]; }
const poc_future_vtable* fvt(bool cpp) { return G.fvt[cpp ? 0 : 1]; }

void add_port(bool sender, std::uint64_t h, const void* vt, const ChanP& c) {
  auto p = std::make_shared<PortModel>();
  p->sender = sender;
  p->handle = h;
  p->vtable = vt;
  p->chan = c;
  S.ports.push_back(p);
}

/// Arms a record's re-entrant action on its channel (the channel's model stops being exact).
void arm_reenter(OpRec* r, std::uint8_t code) {
  if ((code & 7) != 7 || r->chan == nullptr) return;
  code = static_cast<std::uint8_t>(1 + (code >> 3) % 4);  // 1..4: the action (see reenter)
  r->reenter = code;
  ChanModel* c = r->chan.get();
  c->racy.store(true);
  if (PortP tx = pick(S.ports, code, [&](const PortModel& m) { return m.live && m.sender && m.chan.get() == c; }))
    r->re_tx = poc_sender{tx->handle, static_cast<const poc_sender_vtable*>(tx->vtable)};
  if (PortP rx = pick(S.ports, code, [&](const PortModel& m) { return m.live && !m.sender && m.chan.get() == c; }))
    r->re_rx = poc_receiver{rx->handle, static_cast<const poc_receiver_vtable*>(rx->vtable)};
  if (code == 1) r->re_msg_id = register_msg(c, 3);
  if (code == 4) c->close_requested.store(true);
}

/// Retries a try_* call that contradicted the exact model (a transient inside the exporter, e.g. a
/// Rust send pump still holding a permit) for up to 200 ms; the call had no effect each time.
template <typename F>
poc_status settle(poc_status got, poc_status want, poc_status transient, F again) {
  const auto deadline = clock_type::now() + std::chrono::milliseconds(200);
  while (got == transient && clock_type::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    got = again();
  }
  (void)want;
  return got;
}

// ================================================================================================
// Ops: runtimes and channels
// ================================================================================================

void op_rt_new(Reader& in) {
  const std::uint8_t b = in.u8();
  const bool cpp = b & 1;
  const std::uint8_t t = (b >> 1) % 6;
  const std::uint32_t threads = t == 0 ? 0 : t == 1 ? 65 : t == 2 ? UINT32_MAX : t == 3 ? 2 : 1;
  const bool null_out = (b >> 4) % 8 == 7;
  RtP& slot = cpp ? S.cpp_e : S.rust_e;
  const bool valid = threads >= 1 && threads <= 64 && !null_out;
  g_where += cpp ? " cpp" : " rust";
  if (valid && ((slot && !slot->freed) || S.rt_created[cpp ? 0 : 1] >= 2)) return;  // bounded cost
  void* sentinel = reinterpret_cast<void*>(0x1234);
  poc_status st;
  void* out = sentinel;
  if (cpp) st = poc_cpp_runtime_new(threads, null_out ? nullptr : reinterpret_cast<poc_cpp_runtime**>(&out));
  else st = poc_rust_runtime_new(threads, null_out ? nullptr : reinterpret_cast<poc_rust_runtime**>(&out));
  if (!valid) {
    check(st, B(POC_INVALID), "runtime_new with bad threads or NULL out");
    if (out != sentinel) violation("runtime_new wrote *out although it failed");
    return;
  }
  check(st, B(POC_OK) | B(POC_PANIC), "runtime_new");
  if (st != POC_OK) return;
  if (out == nullptr || out == sentinel) violation("runtime_new answered OK without a runtime");
  auto m = std::make_shared<RtModel>();
  m->cpp = cpp;
  if (cpp) m->c = static_cast<poc_cpp_runtime*>(out);
  else m->r = static_cast<poc_rust_runtime*>(out);
  ++S.rt_created[cpp ? 0 : 1];
  slot = m;
  S.all_rts.push_back(m);
}

void shutdown_rt(const RtP& m) {
  m->shutdown_requested.store(true);
  const poc_status st = m->cpp ? poc_cpp_runtime_shutdown(m->c) : poc_rust_runtime_shutdown(m->r);
  check(st, B(POC_OK), "runtime_shutdown (idempotent)");
}

void free_rt(const RtP& m) {
  m->shutdown_requested.store(true);
  if (m->cpp) poc_cpp_runtime_free(m->c);
  else poc_rust_runtime_free(m->r);
  m->freed = true;
  m->c = nullptr;
  m->r = nullptr;
}

void op_rt_shutdown(Reader& in) {
  const std::uint8_t b = in.u8();
  const bool cpp = b & 1;
  g_where += cpp ? " cpp" : " rust";
  const RtP& e = cpp ? S.cpp_e : S.rust_e;
  if ((b >> 1) % 4 == 0 || !e || e->freed) {
    const poc_status st = cpp ? poc_cpp_runtime_shutdown(nullptr) : poc_rust_runtime_shutdown(nullptr);
    check(st, B(POC_INVALID), "runtime_shutdown(NULL)");
    return;
  }
  shutdown_rt(e);
}

void op_rt_free(Reader& in) {
  const std::uint8_t b = in.u8();
  const bool cpp = b & 1;
  g_where += cpp ? " cpp" : " rust";
  RtP& e = cpp ? S.cpp_e : S.rust_e;
  if ((b >> 1) % 4 == 0 || !e || e->freed) {
    if (cpp) poc_cpp_runtime_free(nullptr);
    else poc_rust_runtime_free(nullptr);
    return;
  }
  free_rt(e);
}

void op_chan_new(Reader& in) {
  const std::uint8_t b = in.u8();
  const bool cpp = b & 1;
  RtP rt = pick_rt(b >> 1, cpp);
  const std::uint8_t cs = in.u8(), ms = in.u8(), ns = in.u8();
  std::size_t cap;
  switch (cs % 9) {
    case 0: cap = 0; break;
    case 1: cap = 1; break;
    case 2: cap = 2; break;
    case 3: cap = 3; break;
    case 4: cap = 1 + in.u8() % 16; break;
    case 5: cap = SIZE_MAX; break;
    case 6: cap = SIZE_MAX >> 3; break;
    case 7: cap = (SIZE_MAX >> 3) + 1; break;
    default: cap = 1 + in.u16(); break;
  }
  std::size_t max;
  switch (ms % 8) {
    case 0: max = 0; break;
    case 1: max = 1; break;
    case 2: max = 7; break;
    case 3: max = 64; break;
    case 4: max = 4096; break;
    case 5: max = POC_DEFAULT_MAX_PAYLOAD; break;
    case 6: max = SIZE_MAX; break;
    default: max = in.u16(); break;
  }
  const bool null_tx = ns % 16 == 15, null_rx = ns % 16 == 14;
  const bool ex = ns & 16;
  g_where += std::string(cpp ? " cpp" : " rust") + (rt ? (rt->persistent ? " persistent" : " ephemeral") : " NULL") +
             " cap=" + std::to_string(cap) + " max=" + std::to_string(max);
  if (S.chans.size() >= kMaxChans && rt && !null_tx && !null_rx && cap != 0) return;
  poc_sender tx{0xAAAA, nullptr};
  poc_receiver rx{0xBBBB, nullptr};
  poc_status st;
  if (cpp) {
    poc_cpp_runtime* r = rt ? rt->c : nullptr;
    st = ex || max != 0 ? poc_cpp_channel_new_ex(r, cap, max, null_tx ? nullptr : &tx, null_rx ? nullptr : &rx)
                        : poc_cpp_channel_new(r, cap, null_tx ? nullptr : &tx, null_rx ? nullptr : &rx);
  } else {
    poc_rust_runtime* r = rt ? rt->r : nullptr;
    st = ex || max != 0 ? poc_rust_channel_new_ex(r, cap, max, null_tx ? nullptr : &tx, null_rx ? nullptr : &rx)
                        : poc_rust_channel_new(r, cap, null_tx ? nullptr : &tx, null_rx ? nullptr : &rx);
  }
  std::uint32_t allow;
  if (!rt || null_tx || null_rx || cap == 0) allow = B(POC_INVALID);
  else if (cap > (SIZE_MAX >> 3)) allow = B(POC_OK) | B(POC_INVALID) | (rt->stopping() ? B(POC_SHUTDOWN) : 0);
  else if (rt->stopping()) allow = B(POC_SHUTDOWN);
  else allow = B(POC_OK);
  check(st, allow, "channel_new");
  if (st != POC_OK) {
    if (tx.handle != 0xAAAA || rx.handle != 0xBBBB) violation("channel_new wrote ports although it failed");
    return;
  }
  if (tx.handle == 0 || rx.handle == 0) violation("channel_new gave a 0 handle");
  if (tx.vtable != stx(cpp) || rx.vtable != rtx(cpp)) violation("channel_new gave another vtable than the exporter's static one");
  auto c = std::make_shared<ChanModel>();
  c->idx = static_cast<int>(S.chans.size());
  c->cpp = cpp;
  c->rt = rt;
  c->capacity = cap;
  c->max_payload = max == 0 ? POC_DEFAULT_MAX_PAYLOAD : max;
  S.chans.push_back(c);
  add_port(true, tx.handle, tx.vtable, c);
  add_port(false, rx.handle, rx.vtable, c);
  trace("  -> channel %d tx=%016" PRIx64 " rx=%016" PRIx64, c->idx, tx.handle, rx.handle);
}

// ================================================================================================
// Ops: sender ports
// ================================================================================================

void op_try_send(Reader& in) {
  Pick pk = pick_handle(in, 0);
  ChanModel* c = pk.port ? pk.port->chan.get() : nullptr;
  const std::uint64_t id = pk.port ? register_msg(c, 0) : 0;
  MsgArg m = make_msg(in, c, id);
  g_where += std::string(" handle=") + pk.how + " msg=" + m.how;
  const poc_sender_vtable* vt = stx(pk.cpp);
  if (!pk.port) {
    check(vt->try_send(pk.handle, m.ptr), B(POC_INVALID), "try_send with a bad handle");
    return;
  }
  if (!m.bad) {
    std::lock_guard lock(g_msg_mu);
    g_msgs[id].len = m.v.len;
  }
  const std::uint32_t allow = send_mask(*pk.port, m, false, true);
  poc_status st = vt->try_send(pk.handle, m.ptr);
  if (allow == B(POC_OK)) st = settle(st, POC_OK, POC_FULL, [&] { return vt->try_send(pk.handle, m.ptr); });
  check(st, allow, "try_send");
  if (st == POC_OK) c->enq.fetch_add(1);
  else reject_msg(id, poc_status_str(st));
}

void op_send(Reader& in) {
  Pick pk = pick_handle(in, 0);
  ChanModel* c = pk.port ? pk.port->chan.get() : nullptr;
  const std::uint64_t id = pk.port ? register_msg(c, 0) : 0;
  MsgArg m = make_msg(in, c, id);
  const std::uint8_t f = in.u8();
  const bool null_cb = f % 16 == 15, null_op = f % 16 == 14;
  const std::uint8_t re = in.u8();
  g_where += std::string(" handle=") + pk.how + " msg=" + m.how;
  const poc_sender_vtable* vt = stx(pk.cpp);
  OpRec* r = new_rec(RecKind::send);
  r->chan = pk.port ? pk.port->chan : nullptr;
  r->port = pk.port;
  r->msg_id = id;
  poc_op_id* opp = null_op ? nullptr : &r->op_slot;
  poc_send_complete_fn cb = null_cb ? nullptr : &cb_send_complete;
  if (!pk.port) {
    const poc_status st = vt->send(pk.handle, m.ptr, cb, r, opp);
    r->returned = st;
    r->has_returned = true;
    check(st, B(POC_INVALID), "send with a bad handle");
    return;
  }
  if (!m.bad) {
    std::lock_guard lock(g_msg_mu);
    g_msgs[id].len = m.v.len;
  }
  arm_reenter(r, re);
  const std::uint32_t allow = send_mask(*pk.port, m, null_cb || null_op, false);
  c->inflight.fetch_add(1);
  const poc_status st = vt->send(pk.handle, m.ptr, cb, r, opp);
  r->returned = st;
  r->has_returned = true;
  check(st, allow, "send");
  if (st == POC_PENDING) {
    if (r->op_slot == 0) violation("send answered PENDING without writing *op");
    for (poc_op_id o : pk.port->ops)
      if (o == r->op_slot) violation("a port reused op id %" PRIu64, o);
    pk.port->ops.push_back(r->op_slot);
    trace("  -> PENDING op %" PRIu64, r->op_slot);
    return;
  }
  c->inflight.fetch_sub(1);
  if (r->fired.load() != 0) violation("send's completion ran although send answered %s", poc_status_str(st));
  if (st == POC_OK) c->enq.fetch_add(1);
  else reject_msg(id, poc_status_str(st));
}

/// An op id: one of this port's, another port's, 0 or random.
poc_op_id pick_op_id(Reader& in, const PortP& port) {
  const std::uint8_t b = in.u8(), i = in.u8();
  switch (b % 5) {
    case 0:
    case 1:
      if (port && !port->ops.empty()) return port->ops[i % port->ops.size()];
      return 0;
    case 2: {  // an op of another port (treated as unknown)
      std::vector<poc_op_id> ids;
      for (const PortP& p : S.ports)
        if (p != port)
          for (poc_op_id o : p->ops) ids.push_back(o);
      return ids.empty() ? 1 : ids[i % ids.size()];
    }
    case 3: return 0;
    default: return in.u64();
  }
}

/// The op id a cancel names, and the PENDING op of `port` it reaches, if any. Ids are per port
/// (C++: per channel), so "another port's id" may well be one of this port's ids too.
poc_op_id pick_op(Reader& in, const PortP& port, OpRec** mine) {
  const poc_op_id id = pick_op_id(in, port);
  *mine = nullptr;
  if (port)
    for (auto& r : S.recs)
      if (r->port == port && r->op_slot == id && r->returned == POC_PENDING) *mine = r.get();
  return id;
}

void op_port_cancel(Reader& in, bool sender) {
  Pick pk = pick_handle(in, sender ? 0 : 1);
  OpRec* mine = nullptr;
  const poc_op_id id = pick_op(in, pk.port, &mine);
  g_where += std::string(" handle=") + pk.how + " op=" + std::to_string(id);
  if (mine) mine->cancel_requested.store(true);
  const poc_status st = sender ? stx(pk.cpp)->cancel(pk.handle, id) : rtx(pk.cpp)->cancel(pk.handle, id);
  if (!pk.port) return check(st, B(POC_INVALID), "cancel with a bad handle");
  check(st, pk.port->chan->rt->stopping() ? B(POC_SHUTDOWN) : B(POC_OK), "cancel");
}

void op_sender_close(Reader& in) {
  Pick pk = pick_handle(in, 0);
  g_where += std::string(" handle=") + pk.how;
  if (pk.port) pk.port->chan->close_requested.store(true);
  const poc_status st = stx(pk.cpp)->close(pk.handle);
  if (!pk.port) return check(st, B(POC_INVALID), "sender close with a bad handle");
  check(st, pk.port->chan->rt->stopping() ? B(POC_SHUTDOWN) : B(POC_OK), "sender close");
  if (st == POC_OK) pk.port->chan->closed_for_send = true;
}

void op_sender_clone(Reader& in) {
  Pick pk = pick_handle(in, 0);
  const bool null_out = in.u8() % 8 == 7;
  g_where += std::string(" handle=") + pk.how;
  poc_sender out{0xCCCC, nullptr};
  if (pk.port && S.ports.size() >= kMaxPorts && !null_out) return;
  const poc_status st = stx(pk.cpp)->clone(pk.handle, null_out ? nullptr : &out);
  if (!pk.port) return check(st, B(POC_INVALID), "clone with a bad handle");
  const bool stopping = pk.port->chan->rt->stopping();
  if (null_out) return check(st, B(POC_INVALID) | (stopping ? B(POC_SHUTDOWN) : 0), "clone(NULL out)");
  check(st, stopping ? B(POC_SHUTDOWN) : B(POC_OK), "clone");
  if (st != POC_OK) return;
  if (out.handle == 0 || out.vtable != stx(pk.cpp)) violation("clone gave a bad port");
  ++pk.port->chan->live_senders;
  add_port(true, out.handle, out.vtable, pk.port->chan);
}

void release_port(const PortP& p, bool sender) {
  ChanModel& c = *p->chan;
  p->release_requested.store(true);
  if (!sender || c.live_senders == 1) c.close_requested.store(true);
  const poc_status st =
      sender ? stx(c.cpp)->release(p->handle) : rtx(c.cpp)->release(p->handle);
  check(st, B(POC_OK), sender ? "sender release (also valid after shutdown)" : "receiver release");
  p->live = false;
  if (sender) {
    // (an agent may still hold a sender: then the channel is not closed)
    if (--c.live_senders == 0 && !c.agents.load()) c.closed_for_send = true;
  } else {
    c.rx_closed = true;
    c.closed_for_send = true;
  }
}

void op_port_release(Reader& in, bool sender) {
  Pick pk = pick_handle(in, sender ? 0 : 1);
  g_where += std::string(" handle=") + pk.how;
  if (pk.port) return release_port(pk.port, sender);
  const poc_status st = sender ? stx(pk.cpp)->release(pk.handle) : rtx(pk.cpp)->release(pk.handle);
  check(st, B(POC_INVALID), "release with a bad handle (second release, forged, foreign)");
}

// ================================================================================================
// Ops: receiver ports
// ================================================================================================

void op_try_recv(Reader& in) {
  Pick pk = pick_handle(in, 1);
  const std::uint8_t f = in.u8();
  const bool null_deliver = f % 16 == 15;
  g_where += std::string(" handle=") + pk.how;
  OpRec* r = new_rec(RecKind::try_recv);
  r->chan = pk.port ? pk.port->chan : nullptr;
  r->port = pk.port;
  const poc_receiver_vtable* vt = rtx(pk.cpp);
  poc_recv_complete_fn d = null_deliver ? nullptr : &cb_recv_deliver;
  auto call = [&] {
    InCall ic(r);
    return vt->try_recv(pk.handle, d, r);
  };
  if (!pk.port) {
    check(call(), B(POC_INVALID), "try_recv with a bad handle");
    if (r->delivered.load() != 0) violation("deliver called although try_recv failed");
    return;
  }
  if (!null_deliver) arm_reenter(r, in.u8());
  const std::uint32_t allow = recv_mask(*pk.port, null_deliver, true);
  poc_status st = call();
  if (allow == B(POC_OK)) st = settle(st, POC_OK, POC_EMPTY, call);
  r->returned = st;
  r->has_returned = true;
  check(st, allow, "try_recv");
  if ((st == POC_OK) != (r->delivered.load() == 1))
    violation("try_recv answered %s but deliver ran %d times", poc_status_str(st), r->delivered.load());
}

void op_recv(Reader& in) {
  Pick pk = pick_handle(in, 1);
  const std::uint8_t f = in.u8();
  const bool null_deliver = f % 16 == 15, null_cb = f % 16 == 14, null_op = f % 16 == 13;
  g_where += std::string(" handle=") + pk.how;
  OpRec* r = new_rec(RecKind::recv);
  r->chan = pk.port ? pk.port->chan : nullptr;
  r->port = pk.port;
  const poc_receiver_vtable* vt = rtx(pk.cpp);
  poc_recv_complete_fn d = null_deliver ? nullptr : &cb_recv_deliver;
  poc_recv_complete_fn cb = null_cb ? nullptr : &cb_recv_complete;
  poc_op_id* opp = null_op ? nullptr : &r->op_slot;
  if (!pk.port) {
    poc_status st;
    {
      InCall ic(r);
      st = vt->recv(pk.handle, d, cb, r, opp);
    }
    r->returned = st;
    r->has_returned = true;
    check(st, B(POC_INVALID), "recv with a bad handle");
    return;
  }
  arm_reenter(r, in.u8());
  ChanModel* c = pk.port->chan.get();
  const std::uint32_t allow = recv_mask(*pk.port, null_deliver || null_cb || null_op, false);
  c->inflight.fetch_add(1);
  poc_status st;
  {
    InCall ic(r);
    st = vt->recv(pk.handle, d, cb, r, opp);
  }
  r->returned = st;
  r->has_returned = true;
  check(st, allow, "recv");
  if (st == POC_PENDING) {
    if (r->delivered.load() != 0) violation("recv answered PENDING after calling deliver");
    if (r->op_slot == 0) violation("recv answered PENDING without writing *op");
    for (poc_op_id o : pk.port->ops)
      if (o == r->op_slot) violation("a port reused op id %" PRIu64, o);
    pk.port->ops.push_back(r->op_slot);
    trace("  -> PENDING op %" PRIu64, r->op_slot);
    return;
  }
  c->inflight.fetch_sub(1);
  if (r->fired.load() != 0) violation("recv's completion ran although recv answered %s", poc_status_str(st));
  if ((st == POC_OK) != (r->delivered.load() == 1))
    violation("recv answered %s but deliver ran %d times", poc_status_str(st), r->delivered.load());
}

void op_receiver_close(Reader& in) {
  Pick pk = pick_handle(in, 1);
  g_where += std::string(" handle=") + pk.how;
  if (pk.port) pk.port->chan->close_requested.store(true);
  const poc_status st = rtx(pk.cpp)->close(pk.handle);
  if (!pk.port) return check(st, B(POC_INVALID), "receiver close with a bad handle");
  check(st, pk.port->chan->rt->stopping() ? B(POC_SHUTDOWN) : B(POC_OK), "receiver close");
  if (st == POC_OK) {
    pk.port->chan->rx_closed = true;
    pk.port->chan->closed_for_send = true;
  }
}

// ================================================================================================
// Ops: futures
// ================================================================================================

std::uint64_t pick_x(Reader& in) {
  switch (in.u8() % 7) {
    case 0: return in.u8();
    case 1: return 0xFFFFFFFFull;
    case 2: return 0x100000000ull;
    case 3: return UINT64_MAX;
    case 4: return in.u64();
    case 5: return 0;
    default: return in.u16();
  }
}

Expect square_expect(std::uint64_t x) {
  Expect e;
  if (x == UINT64_MAX) e.status = POC_PANIC;
  else if (x > 0xFFFFFFFFull) {
    e.status = POC_ERROR;
    e.id = 400;
    e.data = "overflow";
    e.check_data = true;
  } else {
    e.id = x * x;
  }
  return e;
}

Expect sum_expect(std::uint64_t first, std::uint32_t count) {
  Expect e;
  std::uint64_t sum = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint64_t x = first + i;
    if (x == UINT64_MAX) {
      e.status = POC_PANIC;
      return e;
    }
    if (x > 0xFFFFFFFFull) {
      e.status = POC_ERROR;
      e.id = 400;
      e.data = "call " + std::to_string(x) + ": overflow";
      e.check_data = true;
      return e;
    }
    sum += x * x;
  }
  e.id = sum;
  e.data = "summed " + std::to_string(count) + " calls";
  e.check_data = true;
  return e;
}

FutP add_fut(const poc_future& f, bool cpp, FutKind k) {
  auto m = std::make_shared<FutModel>();
  m->f = f;
  m->cpp = cpp;
  m->kind = k;
  S.futs.push_back(m);
  if (f.handle == 0) violation("%s gave a future with handle 0", fut_kind_name(k));
  if (f.vtable != fvt(cpp)) violation("%s gave a future with another vtable than its exporter's", fut_kind_name(k));
  trace("  -> future %s %016" PRIx64, fut_kind_name(k), f.handle);
  return m;
}

const char* pick_cstr(std::uint8_t b, std::string& storage) {
  switch (b % 6) {
    case 0: return nullptr;
    case 1: return "";
    case 2: return "\xff\xfe not utf-8";
    case 3: return "SELECT * FROM users";
    case 4: return "row with\nnewline";
    default: storage = "cfg-" + std::to_string(b); return storage.c_str();
  }
}

/// A lent function to give to a sum_calls: one the harness owns (taken over), or a scripted one.
struct FnArg {
  poc_async_fn f{};
  FnP model;            // a harness-owned square function
  ScriptFn* script = nullptr;
  bool usable = false;  // non-NULL call and release
};

FnArg pick_fn_arg(Reader& in) {
  FnArg a;
  const std::uint8_t b = in.u8(), i = in.u8();
  if (b % 3 != 0) {
    if (FnP m = pick(S.fns, i, [](const FnModel& x) { return x.live; })) {
      a.model = m;
      a.f = m->f;
      a.usable = true;
      return a;
    }
  }
  S.sfns.push_back(std::make_unique<ScriptFn>());
  ScriptFn* s = S.sfns.back().get();
  s->script = in.u8();
  s->null_call = b % 16 == 15;
  s->null_release = b % 16 == 14;
  a.script = s;
  a.f = poc_async_fn{s->null_call ? nullptr : &sfn_call, s->null_release ? nullptr : &sfn_release, s};
  a.usable = !s->null_call && !s->null_release;
  return a;
}

void op_fut_new(Reader& in) {
  const std::uint8_t k = in.u8();
  const bool null_out = in.u8() % 16 == 15;
  poc_future out{0xDDDD, nullptr};
  poc_future* op = null_out ? nullptr : &out;
  const bool full = S.futs.size() >= kMaxFuts;
  std::string s1, s2;
  auto created = [&](poc_status st, std::uint32_t allow, const char* what) {
    check(st, allow, what);
    if (st != POC_OK && out.handle != 0xDDDD) violation("%s wrote *out although it failed", what);
  };
  switch (k % 10) {
    case 0: {  // fetch_user
      static const std::int32_t ids[] = {1, 2, 42, 0, 7, -1, INT32_MIN};
      const std::uint8_t s = in.u8();
      const std::int32_t id = s % 8 == 7 ? static_cast<std::int32_t>(in.u32()) : ids[s % 7];
      g_where += " fetch_user(" + std::to_string(id) + ")";
      if (full && !null_out) return;
      const poc_status st = poc_rust_fetch_user(id, op);
      created(st, null_out ? B(POC_INVALID) : B(POC_OK), "poc_rust_fetch_user");
      if (st != POC_OK) return;
      FutP f = add_fut(out, false, FutKind::fetch_user);
      if (id < 0) f->expect.status = POC_PANIC;
      else if (id == 1 || id == 2 || id == 42) {
        f->expect.id = static_cast<std::uint64_t>(id);
        f->expect.data = id == 1 ? "alice" : id == 2 ? "bob" : "ada";
        f->expect.check_data = true;
      } else {
        f->expect.status = POC_ERROR;
        f->expect.id = 404;
        f->expect.data = "user " + std::to_string(id) + " not found";
        f->expect.check_data = true;
      }
      return;
    }
    case 1: {  // load_config
      const std::uint8_t s = in.u8();
      const char* path = pick_cstr(s, s1);
      g_where += " load_config";
      if (full && !null_out) return;
      const bool bad = path == nullptr || path[0] == '\xff' || null_out;
      const poc_status st = poc_rust_load_config(path, op);
      created(st, bad ? B(POC_INVALID) : B(POC_OK), "poc_rust_load_config");
      if (st != POC_OK) return;
      FutP f = add_fut(out, false, FutKind::load_config);
      if (path[0] == 0) {
        f->expect.status = POC_ERROR;
        f->expect.id = 400;
        f->expect.data = "empty path";
      } else {
        f->expect.id = 1;
        f->expect.data = std::string("path=") + path + "\nversion=1\nworkers=4\n";
      }
      f->expect.check_data = true;
      return;
    }
    case 2:
    case 3: {  // database query / insert
      const bool query = k % 10 == 2;
      const std::uint8_t ds = in.u8(), ss = in.u8();
      std::uint64_t db = 0;
      bool live = false;
      if (ds % 4 != 3) {
        std::vector<DbRec*> c;
        for (DbRec& d : S.dbs) c.push_back(&d);
        if (!c.empty()) {
          db = c[ds % c.size()]->h;
          live = c[ds % c.size()]->live;
        }
      } else {
        db = (0x44ull << 56) | (static_cast<std::uint64_t>(in.u32() & 0xFFFFFF) << 32);  // generation 0
      }
      const char* sql = pick_cstr(ss, s1);
      g_where += query ? " db_query" : " db_insert";
      if (full && !null_out) return;
      const bool bad = !live || sql == nullptr || sql[0] == '\xff' || null_out;
      const poc_status st = query ? poc_rust_database_query(db, sql, op) : poc_rust_database_insert(db, sql, op);
      created(st, bad ? B(POC_INVALID) : B(POC_OK), query ? "poc_rust_database_query" : "poc_rust_database_insert");
      if (st != POC_OK) return;
      FutP f = add_fut(out, false, query ? FutKind::db_query : FutKind::db_insert);
      f->expect.any = true;
      return;
    }
    case 4: {  // sync_all
      RtP rt = pick_rt(in.u8(), false);
      const std::uint32_t steps = in.u8() % 5, step_ms = in.u8() % 4;
      g_where += " sync_all";
      if (full && !null_out) return;
      const poc_status st = poc_rust_sync_all(rt ? rt->r : nullptr, steps, step_ms, op);
      created(st, (!rt || null_out) ? B(POC_INVALID) : rt->stopping() ? B(POC_SHUTDOWN) : B(POC_OK), "poc_rust_sync_all");
      if (st != POC_OK) return;
      FutP f = add_fut(out, false, FutKind::sync_all);
      f->rts.push_back(rt);
      f->expect.id = steps;
      f->expect.data = "synced " + std::to_string(steps) + " items";
      f->expect.check_data = true;
      return;
    }
    case 5: {  // delayed_square
      RtP rt = pick_rt(in.u8(), true);
      const std::uint64_t x = pick_x(in);
      const std::uint8_t ds = in.u8();
      const std::uint32_t delay = ds % 8 == 7 ? 60000 : ds % 8;
      g_where += " delayed_square";
      if (full && !null_out) return;
      const poc_status st = poc_cpp_delayed_square(rt ? rt->c : nullptr, x, delay, op);
      created(st, (!rt || null_out) ? B(POC_INVALID) : rt->stopping() ? B(POC_SHUTDOWN) : B(POC_OK),
              "poc_cpp_delayed_square");
      if (st != POC_OK) return;
      FutP f = add_fut(out, true, FutKind::delayed_square);
      f->rts.push_back(rt);
      f->expect = square_expect(x);
      return;
    }
    case 6: {  // a call of a lent square function
      FnP fn = pick(S.fns, in.u8(), [](const FnModel& x) { return x.live; });
      const std::uint8_t as = in.u8();
      const std::uint64_t x = pick_x(in);
      g_where += " lent call";
      if (!fn || (full && !null_out)) return;
      poc_message_view arg{x, nullptr, 0};
      const poc_message_view* ap = &arg;
      bool bad = null_out;
      if (as % 8 == 7) {
        ap = nullptr;
        bad = true;
      } else if (as % 8 == 6) {
        arg.len = 5;  // NULL data with a length: a malformed view
        bad = true;
      } else if (as % 8 == 5) {
        arg.data = g_big;
        arg.len = as;
      }
      const poc_status st = fn->f.call(fn->f.context, ap, op);
      std::uint32_t allow = bad ? B(POC_INVALID) : (fn->rt && fn->rt->stopping()) ? B(POC_SHUTDOWN) : B(POC_OK);
      created(st, allow, "lent function call");
      if (st != POC_OK) return;
      FutP f = add_fut(out, fn->cpp, FutKind::square_call);
      if (fn->rt) f->rts.push_back(fn->rt);
      f->expect = square_expect(x);
      return;
    }
    case 7:
    case 8: {  // sum_calls (Rust, C++): takes the function over
      const bool cpp = k % 10 == 8;
      RtP rt = cpp ? pick_rt(in.u8(), true) : nullptr;
      FnArg a = pick_fn_arg(in);
      const std::uint64_t first = in.u8() % 4 == 3 ? pick_x(in) : in.u8();
      const std::uint32_t count = in.u8() % 6;
      g_where += cpp ? " cpp_sum_calls" : " rust_sum_calls";
      if (a.model) a.model->live = false;  // taken over, whatever the call returns
      if (a.script) a.script->taken = true;
      if (full && !null_out) return;
      const poc_status st = cpp ? poc_cpp_sum_calls(rt ? rt->c : nullptr, a.f, first, count, op)
                                : poc_rust_sum_calls(a.f, first, count, op);
      std::uint32_t allow = B(POC_OK);
      if (!a.usable || null_out || (cpp && !rt)) allow = B(POC_INVALID);
      else if (cpp && rt->stopping()) allow = B(POC_SHUTDOWN);
      created(st, allow, cpp ? "poc_cpp_sum_calls" : "poc_rust_sum_calls");
      if (st != POC_OK) return;
      FutP f = add_fut(out, cpp, cpp ? FutKind::cpp_sum : FutKind::rust_sum);
      if (rt) f->rts.push_back(rt);
      if (a.model) {
        if (a.model->rt) f->rts.push_back(a.model->rt);
        f->expect = sum_expect(first, count);
      } else {
        f->expect.any = true;
      }
      return;
    }
    default: {  // a Rust database: connect or free
      const std::uint8_t b = in.u8();
      if (b % 2 == 0) {
        const char* url = pick_cstr(in.u8(), s1);
        if (S.dbs.size() >= 8) return;
        std::uint64_t db = 0x5555;
        const bool bad = url == nullptr || url[0] == 0 || url[0] == '\xff' || b % 16 == 14;
        const poc_status st = poc_rust_database_connect(url, b % 16 == 14 ? nullptr : &db);
        g_where += " db_connect";
        check(st, bad ? B(POC_INVALID) : B(POC_OK), "poc_rust_database_connect");
        if (st == POC_OK) {
          if (db == 0 || db == 0x5555) violation("database_connect gave handle %" PRIx64, db);
          S.dbs.push_back(DbRec{db, true});
        }
      } else {
        g_where += " db_free";
        std::vector<DbRec*> c;
        for (DbRec& d : S.dbs) c.push_back(&d);
        if (c.empty() || b % 8 == 7) {
          check(poc_rust_database_free(b % 8 == 7 ? in.u64() & 0x00FFFFFFFFFFFFFFull : 0), B(POC_INVALID),
                "database_free of a bad handle");
          return;
        }
        DbRec* d = c[in.u8() % c.size()];
        check(poc_rust_database_free(d->h), d->live ? B(POC_OK) : B(POC_INVALID), "database_free");
        d->live = false;
      }
      return;
    }
  }
}

void check_value(const FutModel& f, const OpRec& r, poc_status st) {
  if (r.d_null_msg) violation("poll of %s answered %s with a NULL value", fut_kind_name(f.kind), poc_status_str(st));
  if (f.expect.any) {
    if (f.kind == FutKind::db_query || f.kind == FutKind::db_insert) {
      if (st == POC_PANIC) violation("%s panicked", fut_kind_name(f.kind));
    }
    return;
  }
  const bool stop = f.rt_stop_matters();
  if (st != f.expect.status) {
    // A call that could not start because its lender's runtime stopped: ERROR 502 (sum_calls).
    if (stop && st == POC_ERROR && (f.kind == FutKind::rust_sum || f.kind == FutKind::cpp_sum)) return;
    violation("%s answered %s, expected %s", fut_kind_name(f.kind), poc_status_str(st),
              poc_status_str(f.expect.status));
  }
  if (st == POC_PANIC) return;  // message texts differ between runtimes
  if (st == POC_OK && r.did != f.expect.id)
    violation("%s value id %" PRIu64 ", expected %" PRIu64, fut_kind_name(f.kind), r.did, f.expect.id);
  if (st == POC_ERROR && r.did != f.expect.id)
    violation("%s error code %" PRIu64 ", expected %" PRIu64, fut_kind_name(f.kind), r.did, f.expect.id);
  if (f.expect.check_data && r.ddata != f.expect.data)
    violation("%s value data \"%s\", expected \"%s\"", fut_kind_name(f.kind), r.ddata.c_str(),
              f.expect.data.c_str());
}

void op_fut_poll(Reader& in) {
  Pick pk = pick_handle(in, 2);
  const std::uint8_t n = in.u8();
  const bool null_wake = n % 16 == 15, null_deliver = n % 16 == 14;
  g_where += std::string(" handle=") + pk.how;
  OpRec* r = new_rec(RecKind::poll);
  r->fut = pk.fut;
  poc_status st;
  {
    InCall ic(r);
    st = fvt(pk.cpp)->poll(pk.handle, null_wake ? nullptr : &cb_wake, null_deliver ? nullptr : &cb_poll_deliver, r);
  }
  r->returned = st;
  r->has_returned = true;
  const int delivered = r->delivered.load();
  const bool value = st == POC_OK || st == POC_ERROR || st == POC_PANIC;
  if (value != (delivered == 1))
    violation("poll answered %s but deliver ran %d times", poc_status_str(st), delivered);
  if (st != POC_PENDING && r->fired.load() != 0) violation("wake ran although poll answered %s", poc_status_str(st));
  if (!pk.fut) return check(st, B(POC_INVALID), "poll with a bad handle");
  FutModel& f = *pk.fut;
  if (null_wake || null_deliver) return check(st, B(POC_INVALID), "poll with NULL wake or deliver");
  std::uint32_t allow;
  if (f.final_answered) allow = B(POC_INVALID);
  else if (f.cancel_requested)
    allow = B(POC_CANCELLED) | (f.rt_stop_matters() ? B(POC_SHUTDOWN) : 0) | (f.cancelled_answered ? B(POC_INVALID) : 0);
  else {
    allow = B(POC_OK) | B(POC_ERROR) | B(POC_PANIC) | B(POC_PENDING);
    if (f.rt_stop_matters() || f.kind == FutKind::scripted || (f.expect.any && f.kind != FutKind::db_query && f.kind != FutKind::db_insert))
      allow |= B(POC_SHUTDOWN);
  }
  check(st, allow, "poll");
  if (value || st == POC_SHUTDOWN) f.final_answered = true;
  if (st == POC_CANCELLED) f.cancelled_answered = true;
  if (value) check_value(f, *r, st);
}

void op_fut_cancel(Reader& in) {
  Pick pk = pick_handle(in, 2);
  g_where += std::string(" handle=") + pk.how;
  if (pk.fut) pk.fut->cancel_requested = true;
  const poc_status st = fvt(pk.cpp)->cancel(pk.handle);
  check(st, pk.fut ? B(POC_OK) : B(POC_INVALID), "future cancel");
}

void op_fut_release(Reader& in) {
  Pick pk = pick_handle(in, 2);
  g_where += std::string(" handle=") + pk.how;
  const poc_status st = fvt(pk.cpp)->release(pk.handle);
  check(st, pk.fut ? B(POC_OK) : B(POC_INVALID), "future release");
  if (pk.fut) pk.fut->live = false;
}

// ================================================================================================
// Ops: lent functions
// ================================================================================================

void op_fn_new(Reader& in) {
  const std::uint8_t b = in.u8();
  const bool cpp = b & 1;
  RtP rt = pick_rt(b >> 1, cpp);
  const std::uint8_t ms = in.u8();
  const std::uint32_t mode = ms % 6 < 3 ? ms % 6 : ms % 6 == 3 ? 3 : ms % 6 == 4 ? 0xFFFFFFFFu : 7;
  const std::uint32_t delay = in.u8() % 6;
  const bool null_out = in.u8() % 16 == 15;
  g_where += std::string(cpp ? " cpp" : " rust") + " mode=" + std::to_string(mode);
  if (S.fns.size() >= kMaxFns && !null_out) return;
  poc_async_fn out{nullptr, nullptr, reinterpret_cast<void*>(0x77)};
  const poc_status st = cpp ? poc_cpp_square_fn(rt ? rt->c : nullptr, mode, delay, null_out ? nullptr : &out)
                            : poc_rust_square_fn(rt ? rt->r : nullptr, mode, delay, null_out ? nullptr : &out);
  const bool bad_mode = mode > POC_SQUARE_TIMER;
  std::uint32_t allow;
  if (null_out || bad_mode || (cpp && !rt) || (!cpp && !rt && mode != POC_SQUARE_READY)) allow = B(POC_INVALID);
  else if (rt && rt->stopping()) allow = B(POC_SHUTDOWN);
  else allow = B(POC_OK);
  check(st, allow, cpp ? "poc_cpp_square_fn" : "poc_rust_square_fn");
  if (st != POC_OK) {
    if (out.context != reinterpret_cast<void*>(0x77)) violation("square_fn wrote *out although it failed");
    return;
  }
  if (out.call == nullptr || out.release == nullptr) violation("square_fn gave a NULL call/release");
  auto m = std::make_shared<FnModel>();
  m->f = out;
  m->cpp = cpp;
  m->mode = mode;
  m->rt = rt;
  S.fns.push_back(m);
}

void op_fn_release(Reader& in) {
  FnP fn = pick(S.fns, in.u8(), [](const FnModel& x) { return x.live; });
  if (!fn) return;
  fn->f.release(fn->f.context);
  fn->live = false;  // never called or released again: its context is gone
}

// ================================================================================================
// Ops: agents
// ================================================================================================

const poc_sender_vtable kBadSenderVt[3] = {
    {99, sizeof(poc_sender_vtable), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr},
    {POC_ABI_VERSION, 8, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr},
    {POC_ABI_VERSION, sizeof(poc_sender_vtable), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr},
};
const poc_receiver_vtable kBadReceiverVt[3] = {
    {99, sizeof(poc_receiver_vtable), nullptr, nullptr, nullptr, nullptr, nullptr},
    {POC_ABI_VERSION, 8, nullptr, nullptr, nullptr, nullptr, nullptr},
    {POC_ABI_VERSION, sizeof(poc_receiver_vtable), nullptr, nullptr, nullptr, nullptr, nullptr},
};

void op_agent(Reader& in) {
  const std::uint8_t b = in.u8();
  const bool cpp = b & 1;
  const int kind = (b >> 1) % 5;  // 0 producer, 1 consumer, 2 echo, 3 timer (C++), 4 cancel
  RtP rt = pick_rt(in.u8(), cpp);
  if (kind == 4) {
    const poc_agent_id id = in.u8() % 2 ? in.u64() : (S.agents.empty() ? 0 : S.agents[in.u8() % S.agents.size()].id);
    g_where += " agent_cancel";
    const poc_status st = cpp ? poc_cpp_agent_cancel(rt ? rt->c : nullptr, id) : poc_rust_agent_cancel(rt ? rt->r : nullptr, id);
    check(st, rt ? B(POC_OK) : B(POC_INVALID), "agent_cancel (OK also for unknown or ended agents)");
    return;
  }
  const int k = (!cpp && kind == 3) ? 0 : kind;
  const std::uint8_t vs = in.u8();  // 0..: the port vtables (bad ones must be refused)
  const bool null_done = vs % 16 == 15;
  const int bad_vt = vs % 16 >= 12 && vs % 16 <= 14 ? vs % 16 - 12 : -1;
  PortP tx = (k == 0 || k == 2 || k == 3) ? pick(S.ports, in.u8(), [](const PortModel& m) { return m.live && m.sender; }) : nullptr;
  PortP rx = (k == 1 || k == 2) ? pick(S.ports, in.u8(), [](const PortModel& m) { return m.live && !m.sender; }) : nullptr;
  const std::uint64_t count = in.u8() % 33;
  const std::size_t payload = in.u8() % 4 == 3 ? in.u16() : in.u8() % 48;
  g_where += std::string(cpp ? " cpp" : " rust") + " kind=" + std::to_string(k);
  if ((k != 1 && !tx) || ((k == 1 || k == 2) && !rx)) return;
  if (S.agents.size() >= kMaxAgents && bad_vt < 0 && !null_done && rt) return;
  poc_sender ptx = tx ? poc_sender{tx->handle, static_cast<const poc_sender_vtable*>(tx->vtable)} : poc_sender{};
  poc_receiver prx = rx ? poc_receiver{rx->handle, static_cast<const poc_receiver_vtable*>(rx->vtable)} : poc_receiver{};
  if (bad_vt >= 0) {
    if (k == 1 || (k == 2 && (vs & 32))) prx.vtable = kBadReceiverVt + bad_vt;
    else ptx.vtable = kBadSenderVt + bad_vt;
  }
  if (vs % 16 == 11) {  // NULL vtable
    if (tx) ptx.vtable = nullptr;
    else prx.vtable = nullptr;
  }
  const bool bad_port = bad_vt >= 0 || vs % 16 == 11;
  OpRec* r = new_rec(RecKind::agent);
  // An ephemeral runtime's agents end when it is freed; others are cancelled by id at the end.
  const bool want_id = !rt || rt->persistent || (vs & 64) == 0;
  poc_agent_id id = 0;
  poc_agent_id* idp = want_id ? &id : nullptr;
  poc_agent_done_fn done = null_done ? nullptr : &cb_agent_done;
  // Marked before the start: the agent may send, receive, close and release at once, on a
  // runtime thread. Undone if the start fails (nothing was taken then).
  bool had_agents[2] = {false, false};
  {
    int n = 0;
    for (const PortP& p : {tx, rx}) {
      if (p) {
        had_agents[n] = p->chan->agents.exchange(true);
        p->chan->close_requested.store(true);
        p->release_requested.store(true);
      }
      ++n;
    }
  }
  poc_status st;
  if (cpp) {
    poc_cpp_runtime* c = rt ? rt->c : nullptr;
    switch (k) {
      case 0: st = poc_cpp_producer_start(c, ptx, 1, count, payload, done, r, idp); break;
      case 1: st = poc_cpp_consumer_start(c, prx, done, r, idp); break;
      case 2: st = poc_cpp_echo_start(c, prx, ptx, done, r, idp); break;
      default: st = poc_cpp_timer_start(c, ptx, 1 + in.u8() % 3, count % 8, done, r, idp); break;
    }
  } else {
    poc_rust_runtime* c = rt ? rt->r : nullptr;
    switch (k) {
      case 0: st = poc_rust_producer_start(c, ptx, 1, count, payload, done, r, idp); break;
      case 1: st = poc_rust_consumer_start(c, prx, done, r, idp); break;
      default: st = poc_rust_echo_start(c, prx, ptx, done, r, idp); break;
    }
  }
  r->returned = st;
  r->has_returned = true;
  std::uint32_t allow;
  if (!rt || null_done || bad_port) allow = B(POC_INVALID);
  else if (rt->stopping()) allow = B(POC_SHUTDOWN);
  else allow = B(POC_OK);
  check(st, allow, "agent start (a bad port vtable is INVALID and the ports are not taken)");
  if (st != POC_OK) {
    // (same channel: the second exchange saw the first's true, so only the first restores)
    if (tx && !had_agents[0]) tx->chan->agents.store(false);
    if (rx && !had_agents[1]) rx->chan->agents.store(false);
    if (tx) tx->release_requested.store(false);
    if (rx) rx->release_requested.store(false);
    return;
  }
  for (const PortP& p : {tx, rx}) {
    if (!p) continue;
    p->live = false;
    p->given = true;
    if (p->sender) --p->chan->live_senders;
  }
  S.agents.push_back(AgentRec{rt, id, want_id, r});
}

// ================================================================================================
// Ops: miscellany
// ================================================================================================

std::uint64_t splitmix64(std::uint64_t x) {
  std::uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t my_checksum(const poc_message_view& v) {
  std::uint64_t s = splitmix64(v.id) + splitmix64(v.len);
  for (std::size_t i = 0; i < v.len; i += 8) {
    std::uint64_t w = 0;
    for (std::size_t j = 0; j < 8 && i + j < v.len; ++j) w |= static_cast<std::uint64_t>(v.data[i + j]) << (8 * j);
    s += w;
  }
  return s;
}

void op_misc(Reader& in) {
  const std::uint8_t b = in.u8();
  switch (b % 4) {
    case 0: {
      const poc_status s = static_cast<poc_status>(in.u32());
      const char* name = poc_status_str(s);
      if (name == nullptr) violation("poc_status_str(%d) is NULL", s);
      if ((s < 0 || s > 9) && std::strcmp(name, "UNKNOWN") != 0) violation("poc_status_str(%d) = %s", s, name);
      if (poc_abi_version() != POC_ABI_VERSION) violation("poc_abi_version() != POC_ABI_VERSION");
      return;
    }
    case 1: {
      if (poc_message_checksum(nullptr) != 0) violation("poc_message_checksum(NULL) != 0");
      const poc_message_view v{in.u64(), in.u8() % 2 ? g_big : nullptr, 0};
      poc_message_view w = v;
      if (w.data != nullptr) w.len = in.u8();
      if (poc_message_checksum(&w) != my_checksum(w)) violation("poc_message_checksum differs from docs/contract.md");
      return;
    }
    case 2: {  // sync_progress
      Pick pk = pick_handle(in, 2);
      const std::uint8_t n = in.u8();
      std::uint64_t steps = 0;
      std::uint32_t running = 7;
      const poc_status st = poc_rust_sync_progress(pk.handle, n % 4 == 3 ? nullptr : &steps, n % 4 == 2 ? nullptr : &running);
      g_where += std::string(" sync_progress handle=") + pk.how;
      // sync_progress takes the bare handle (no vtable): any live Rust sync_all future answers.
      FutP sf = pick(S.futs, 0, [&](const FutModel& f) {
        return f.live && !f.cpp && f.kind == FutKind::sync_all && f.f.handle == pk.handle;
      });
      const bool ok = sf && n % 4 != 3;
      check(st, ok ? B(POC_OK) : B(POC_INVALID), "poc_rust_sync_progress");
      if (st == POC_OK && (steps > sf->expect.id || (n % 4 != 2 && running > 1)))
        violation("sync_progress: steps %" PRIu64 " running %u", steps, running);
      return;
    }
    default: {  // wait a little: completions run, the model becomes exact again
      const auto deadline = clock_type::now() + std::chrono::microseconds(200 + 200 * (in.u8() % 8));
      while (clock_type::now() < deadline) {
        bool idle = true;
        for (const ChanP& c : S.chans) idle = idle && c->inflight.load() == 0;
        if (idle) break;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      return;
    }
  }
}

// ================================================================================================
// The end of an input: release everything, wait for what is owed, check the tallies
// ================================================================================================

bool all_settled(std::string* why) {
  for (const auto& r : S.recs) {
    const int fired = r->finished.load(std::memory_order_acquire);  // the callback has returned
    if (r->kind == RecKind::agent) {
      if (r->returned == POC_OK && fired == 0) {
        if (why) *why = "an agent's done callback never ran";
        return false;
      }
      continue;
    }
    if (r->returned == POC_PENDING && fired == 0) {
      if (why) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "a PENDING %s (op %" PRIu64 ", op #%d) never completed",
                      r->kind == RecKind::send ? "send" : r->kind == RecKind::recv ? "recv" : "poll (its wake)",
                      r->op_slot, r->seq);
        *why = buf;
      }
      return false;
    }
  }
  for (const auto& s : S.sfns)
    if (s->taken && !s->null_release && s->released.load() == 0) {
      if (why) *why = "a lent function given to a sum_calls was never released";
      return false;
    }
  {
    std::lock_guard lock(g_hf_mu);
    for (const HFut& f : g_hfuts)
      if (f.released == 0) {
        if (why) *why = "a future that a scripted lender gave out was never released by its importer";
        return false;
      }
  }
  if (poc::detail::cpp_future_count() != 0) {
    if (why) *why = "C++ futures still live after everything was released (cpp_future_count != 0)";
    return false;
  }
  return true;
}

void finish_input() {
  g_where = "end of input";
  // Agents on runtimes that stay alive are cancelled by id (others end with their runtime).
  for (const AgentRec& a : S.agents)
    if (a.have_id && a.rt && !a.rt->freed) {
      const poc_status st = a.rt->cpp ? poc_cpp_agent_cancel(a.rt->c, a.id) : poc_rust_agent_cancel(a.rt->r, a.id);
      check(st, B(POC_OK), "agent_cancel");
    }
  for (const FutP& f : S.futs)
    if (f->live) {
      check(fvt(f->cpp)->release(f->f.handle), B(POC_OK), "future release at the end");
      f->live = false;
    }
  for (const FnP& fn : S.fns)
    if (fn->live) {
      fn->f.release(fn->f.context);
      fn->live = false;
    }
  for (const PortP& p : S.ports)
    if (p->live) release_port(p, p->sender);
  for (DbRec& d : S.dbs)
    if (d.live) {
      check(poc_rust_database_free(d.h), B(POC_OK), "database_free at the end");
      d.live = false;
    }
  for (RtP* e : {&S.cpp_e, &S.rust_e})
    if (*e && !(*e)->freed) free_rt(*e);

  const auto deadline = clock_type::now() + std::chrono::seconds(15);
  std::string why;
  while (!all_settled(&why)) {
    if (clock_type::now() > deadline) violation("after releasing everything and waiting 15 s: %s", why.c_str());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (const auto& r : S.recs) {
    const int fired = r->fired.load();
    const int expect = r->kind == RecKind::agent ? (r->returned == POC_OK ? 1 : 0) : (r->returned == POC_PENDING ? 1 : 0);
    if (fired != expect)
      violation("op #%d: callback ran %d times, owed %d (the call answered %s)", r->seq, fired, expect,
                poc_status_str(r->returned));
  }
  for (const auto& s : S.sfns) {
    const int want = s->taken && !s->null_release ? 1 : 0;
    if (s->released.load() != want)
      violation("a lent function given to a sum_calls was released %d times (owed %d)", s->released.load(), want);
  }
  // Keep a few stale handles for later inputs.
  auto keep = [](std::uint64_t h, int kind, bool cpp) {
    if (G.old_stale.size() < 64) G.old_stale.push_back({h, kind, cpp});
    else G.old_stale[G.inputs % 64] = {h, kind, cpp};
  };
  for (const PortP& p : S.ports)
    if (!p->given && (G.inputs % 4 == 0)) keep(p->handle, p->sender ? 0 : 1, p->chan->cpp);
  for (const FutP& f : S.futs)
    if (G.inputs % 4 == 0) keep(f->f.handle, 2, f->cpp);
  ++G.inputs;

  S.recs.clear();
  S.chans.clear();
  S.ports.clear();
  S.futs.clear();
  S.fns.clear();
  S.agents.clear();
  S.dbs.clear();
  S.sfns.clear();
  S.all_rts.clear();
  S.cpp_e.reset();
  S.rust_e.reset();
  S.rt_created[0] = S.rt_created[1] = 0;
  S.big_payloads = 0;
  {
    std::lock_guard lock(g_msg_mu);
    g_msgs.clear();
  }
  {
    std::lock_guard lock(g_hf_mu);
    g_hfuts.clear();
  }
}

// ================================================================================================
// Set-up
// ================================================================================================

RtP make_persistent(bool cpp) {
  auto m = std::make_shared<RtModel>();
  m->cpp = cpp;
  m->persistent = true;
  const poc_status st = cpp ? poc_cpp_runtime_new(1, &m->c) : poc_rust_runtime_new(1, &m->r);
  if (st != POC_OK) violation("cannot start the persistent %s runtime", cpp ? "C++" : "Rust");
  return m;
}

void learn_vtables(const RtP& rt) {
  poc_sender tx{};
  poc_receiver rx{};
  const poc_status st = rt->cpp ? poc_cpp_channel_new(rt->c, 1, &tx, &rx) : poc_rust_channel_new(rt->r, 1, &tx, &rx);
  if (st != POC_OK) violation("cannot make a channel at start-up");
  const int i = rt->cpp ? 0 : 1;
  G.stx[i] = tx.vtable;
  G.rtx[i] = rx.vtable;
  for (const void* vt : {static_cast<const void*>(tx.vtable), static_cast<const void*>(rx.vtable)})
    if (vt == nullptr) violation("a port with a NULL vtable");
  if (tx.vtable->abi_version != POC_ABI_VERSION || tx.vtable->size != sizeof(poc_sender_vtable) ||
      rx.vtable->abi_version != POC_ABI_VERSION || rx.vtable->size != sizeof(poc_receiver_vtable))
    violation("a port vtable with another ABI version or size");
  tx.vtable->release(tx.handle);
  rx.vtable->release(rx.handle);
  poc_future f{};
  const poc_status fs = rt->cpp ? poc_cpp_delayed_square(rt->c, 2, 0, &f) : poc_rust_fetch_user(1, &f);
  if (fs != POC_OK || f.vtable == nullptr) violation("cannot make a future at start-up");
  if (f.vtable->abi_version != POC_ABI_VERSION || f.vtable->size != sizeof(poc_future_vtable))
    violation("a future vtable with another ABI version or size");
  G.fvt[i] = f.vtable;
  f.vtable->release(f.handle);
}

using OpFn = void (*)(Reader&);

struct OpEntry {
  const char* name;
  OpFn fn;
};

const OpEntry kOps[] = {
    {"rt_new", op_rt_new},                                            // 0
    {"rt_shutdown", op_rt_shutdown},                                  // 1
    {"rt_free", op_rt_free},                                          // 2
    {"chan_new", op_chan_new},                                        // 3
    {"try_send", op_try_send},                                        // 4
    {"send", op_send},                                                // 5
    {"sender_cancel", [](Reader& in) { op_port_cancel(in, true); }},  // 6
    {"sender_close", op_sender_close},                                // 7
    {"sender_clone", op_sender_clone},                                // 8
    {"sender_release", [](Reader& in) { op_port_release(in, true); }},  // 9
    {"try_recv", op_try_recv},                                        // 10
    {"recv", op_recv},                                                // 11
    {"receiver_cancel", [](Reader& in) { op_port_cancel(in, false); }},  // 12
    {"receiver_close", op_receiver_close},                            // 13
    {"receiver_release", [](Reader& in) { op_port_release(in, false); }},  // 14
    {"fut_new", op_fut_new},                                          // 15
    {"fut_poll", op_fut_poll},                                        // 16
    {"fut_cancel", op_fut_cancel},                                    // 17
    {"fut_release", op_fut_release},                                  // 18
    {"fn_new", op_fn_new},                                            // 19
    {"fn_release", op_fn_release},                                    // 20
    {"agent", op_agent},                                              // 21
    {"misc", op_misc},                                                // 22
};
constexpr int kNumOps = sizeof(kOps) / sizeof(kOps[0]);

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_trace = std::getenv("POC_FUZZ_TRACE") != nullptr;
  // fetch_user(<0) panics on purpose, often: one line per panic, not a backtrace.
  setenv("RUST_BACKTRACE", "0", 1);
  G.main_thread = std::this_thread::get_id();
  g_big = static_cast<std::uint8_t*>(std::malloc(kBig));
  for (std::size_t i = 0; i < kBig; ++i) g_big[i] = static_cast<std::uint8_t>(i * 7 + 3);
  G.cpp_p = make_persistent(true);
  G.rust_p = make_persistent(false);
  learn_vtables(G.cpp_p);
  learn_vtables(G.rust_p);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in{data, size};
  S.op = 0;
  while (!in.empty() && S.op < kMaxOps) {
    const std::uint8_t code = in.u8();
    const OpEntry& e = kOps[code % kNumOps];
    g_where = std::string("op #") + std::to_string(S.op) + " " + e.name;
    trace("%s ...", g_where.c_str());
    e.fn(in);
    trace("%s", g_where.c_str());
    ++S.op;
  }
  finish_input();
  return 0;
}
