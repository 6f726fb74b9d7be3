/*
 * poc/bridge.h — the C ABI that C++ (Asio), Rust (tokio) and C# (.NET) use to exchange messages
 * through each other's async channels and to await each other's async calls.
 *
 * This header is the contract. It is self-contained, compiles as C11 and as C++20, and every
 * runtime checks its own declarations against it (C++ static_asserts, Rust size/align assertions,
 * a C# test). The handoff protocol is explained as numbered steps in docs/contract.md.
 *
 * Vocabulary
 *   exporter  the runtime that owns a channel (or a future) and hands out ports for it;
 *   importer  the runtime that calls a port's vtable and wraps it in its own async API;
 *   op        one pending send or receive, named by a poc_op_id the exporter writes out.
 *
 * Rules every exporter keeps (ARCHITECTURE.md §2.3) and every importer may rely on:
 *   1. Non-blocking: no function here waits for another thread or runtime.
 *   2. Fast path: send/recv return POC_OK when they complete at once (the completion callback is
 *      then NOT called), POC_PENDING when they complete later, or an error (callback not called).
 *   3. Exactly once: after POC_PENDING the completion callback runs exactly once, never while the
 *      exporter holds a lock of its own, and possibly before send/recv has returned (the op id is
 *      written before that can happen).
 *   4. Re-entrant: a callback may call any function here, including on the same port.
 *   5. Cancellation is a request: cancel never blocks; the op still completes exactly once, with
 *      POC_CANCELLED if it had no effect, or with its real outcome if it won the race.
 *   6. Order: messages from one sender that awaits each send arrive in order.
 *   7. Close: closing a sender (or releasing the last one) stops new sends; receivers drain what is
 *      queued and then get POC_CLOSED. Closing or releasing the receiver makes pending and later
 *      sends fail with POC_CLOSED.
 *   8. Shutdown: when the exporting runtime shuts down, pending ops complete with POC_SHUTDOWN and
 *      later calls return POC_SHUTDOWN; release stays valid.
 *   9. Containment: no Rust panic, C++ exception or .NET exception crosses this ABI; it is caught
 *      at the boundary and reported as POC_PANIC.
 */
#ifndef POC_BRIDGE_H
#define POC_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

/** ABI version. Every vtable starts with the version it was built for; importers reject others. */
#define POC_ABI_VERSION 1u

#if defined(_WIN32)
#define POC_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define POC_API __attribute__((visibility("default")))
#else
#define POC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================== */
/* Section - Statuses                                                                             */
/* ============================================================================================== */

/** Result of every call and every completion. A signed 32-bit integer on every platform. */
typedef int32_t poc_status;

/** Done now. For recv/try_recv/poll the value has been delivered synchronously. */
#define POC_OK 0
/** Will complete later: the completion callback (or wake) runs exactly once. */
#define POC_PENDING 1
/** try_send only: the channel is at capacity. Nothing was enqueued. */
#define POC_FULL 2
/** try_recv only: nothing is queued right now. Nothing was dequeued. */
#define POC_EMPTY 3
/** The channel is closed for this operation (see rule 7). Nothing was enqueued or dequeued. */
#define POC_CLOSED 4
/** The op or future was cancelled before it had any effect. */
#define POC_CANCELLED 5
/** The owning runtime is shutting down or has shut down (rule 8). */
#define POC_SHUTDOWN 6
/** A future finished with an application error (a Rust Err, a thrown .NET exception it maps,
 *  an Asio error code). The delivered value describes the error: id = error code, data = UTF-8
 *  message. Never used by ports. */
#define POC_ERROR 7
/** Misuse: a NULL pointer, an unknown, stale, released, forged or foreign handle, an oversized
 *  payload, a zero capacity, a call in the wrong state. Nothing happened. */
#define POC_INVALID 8
/** The callee's own code failed (Rust panic, C++ exception, .NET exception) and was contained. */
#define POC_PANIC 9

/**
 * Name of a status ("OK", "PENDING", …, "PANIC"; "UNKNOWN" for anything else).
 * The string is static; never free it. Callable from any thread.
 */
POC_API const char* poc_status_str(poc_status status);

/** The POC_ABI_VERSION the native library was built with. */
POC_API uint32_t poc_abi_version(void);

/* ============================================================================================== */
/* Section - Messages                                                                             */
/* ============================================================================================== */

/** Largest payload a channel accepts unless it was created with another limit (16 MiB). */
#define POC_DEFAULT_MAX_PAYLOAD ((size_t)16u * 1024u * 1024u)

/**
 * A borrowed view of one message: a 64-bit id and a byte payload.
 *
 * Ownership: the view and the bytes it points to belong to whoever passes it, and are valid only
 * for the duration of the call or callback that carries it. A runtime that keeps a message copies
 * it into its own type (poc::message, Rust Message, C# Message) before returning.
 * `data` may be NULL only when `len` is 0.
 */
typedef struct poc_message_view {
  uint64_t id;
  const uint8_t* data;
  size_t len;
} poc_message_view;

/**
 * The checksum that agents, scenarios and tests use to account for messages (docs/contract.md):
 *   splitmix64(id) + splitmix64(len) + the wrapping sum of the payload read as little-endian
 *   64-bit words (the last word zero-padded), all arithmetic wrapping mod 2^64.
 * A set of messages is summarised by the wrapping sum of their checksums, so the result does not
 * depend on the order in which they arrived. Returns 0 for a NULL view. Any thread.
 */
POC_API uint64_t poc_message_checksum(const poc_message_view* msg);

/* ============================================================================================== */
/* Section - Ports                                                                                */
/* ============================================================================================== */

/** Names one pending op of one port; written by send/recv before the op can complete. 0 = none.
 *  Ids are never reused by a port (a stale cancel may arrive after its op completed and must not
 *  reach a newer op). */
typedef uint64_t poc_op_id;

/**
 * Completion of a send that returned POC_PENDING.
 * Called exactly once, on a thread of the exporting runtime, never under an exporter lock, with
 * POC_OK (the message is enqueued), POC_CANCELLED, POC_CLOSED or POC_SHUTDOWN.
 */
typedef void (*poc_send_complete_fn)(void* user, poc_status status);

/**
 * Hands a received message (or a future's value) to the importer.
 * `msg` is non-NULL exactly when `status` is POC_OK (or, for futures, POC_ERROR/POC_PANIC) and is
 * borrowed for the duration of the call: copy what you keep.
 * As a *deliver* function it is called synchronously, on the calling thread, before the call that
 * was given it returns POC_OK. As a *completion* it is called exactly once after POC_PENDING, on a
 * thread of the exporting runtime, never under an exporter lock, with POC_OK and the message, or
 * with POC_CANCELLED, POC_CLOSED or POC_SHUTDOWN and msg == NULL.
 */
typedef void (*poc_recv_complete_fn)(void* user, poc_status status, const poc_message_view* msg);

typedef struct poc_sender poc_sender;
typedef struct poc_receiver poc_receiver;

/**
 * Functions of a sender port. Static, never freed, shared by every port of one exporter.
 * Every function takes the port's handle first; a handle that is 0, stale, released, forged or
 * belongs to another kind of port gets POC_INVALID and nothing happens.
 */
typedef struct poc_sender_vtable {
  /** POC_ABI_VERSION of the exporter. */
  uint32_t abi_version;
  /** sizeof(poc_sender_vtable) as the exporter was compiled; importers check it. */
  uint32_t size;

  /**
   * Enqueue `msg` now if there is room. Returns POC_OK, POC_FULL, POC_CLOSED, POC_SHUTDOWN or
   * POC_INVALID (NULL msg, payload over the channel's limit). The view is copied before return.
   */
  poc_status (*try_send)(uint64_t handle, const poc_message_view* msg);

  /**
   * Enqueue `msg`, waiting for room (backpressure; nothing is dropped).
   * The view is copied before return. Returns POC_OK (enqueued; `on_complete` is not called),
   * POC_PENDING (`*op` is written first; `on_complete(user, …)` then runs exactly once),
   * POC_CLOSED, POC_SHUTDOWN or POC_INVALID (NULL msg/on_complete/op, oversized payload).
   */
  poc_status (*send)(uint64_t handle, const poc_message_view* msg, poc_send_complete_fn on_complete,
                     void* user, poc_op_id* op);

  /**
   * Request cancellation of a pending send. Never blocks. The op still completes exactly once:
   * POC_CANCELLED when nothing was enqueued, POC_OK when the send won the race.
   * Returns POC_OK (also for an op that already completed or is unknown: cancel is a request),
   * POC_SHUTDOWN or POC_INVALID (bad handle). Only ops issued through this same port are reached;
   * the op id of another port is treated as unknown.
   */
  poc_status (*cancel)(uint64_t handle, poc_op_id op);

  /**
   * Close the channel for new sends from every sender. Pending sends complete with POC_CLOSED
   * unless they already enqueued; receivers drain what is queued, then get POC_CLOSED.
   * Idempotent. Returns POC_OK, POC_SHUTDOWN or POC_INVALID. The port must still be released.
   */
  poc_status (*close)(uint64_t handle);

  /** Make another sender port for the same channel into `*out`. Returns POC_OK, POC_SHUTDOWN or
   *  POC_INVALID (bad handle, NULL out). The clone is released separately. */
  poc_status (*clone)(uint64_t handle, poc_sender* out);

  /**
   * Give the port back. Its pending sends complete (POC_CANCELLED unless already enqueued);
   * releasing the last sender closes the channel (rule 7). Valid after shutdown. Returns POC_OK,
   * or POC_INVALID for a stale handle (a second release). Releasing a port while another thread
   * is still inside a call on that same port is misuse: such a send still completes exactly once,
   * but the release may not cancel it.
   */
  poc_status (*release)(uint64_t handle);
} poc_sender_vtable;

/**
 * Functions of a receiver port. A channel has one receiver port; concurrent recv ops on it are
 * served in the order they were issued. Bad handles get POC_INVALID, as for senders.
 */
typedef struct poc_receiver_vtable {
  /** POC_ABI_VERSION of the exporter. */
  uint32_t abi_version;
  /** sizeof(poc_receiver_vtable) as the exporter was compiled. */
  uint32_t size;

  /**
   * Dequeue a message now if one is queued. Returns POC_OK after calling `deliver(user, POC_OK,
   * &msg)` synchronously, POC_EMPTY, POC_CLOSED (closed and drained), POC_SHUTDOWN or POC_INVALID.
   */
  poc_status (*try_recv)(uint64_t handle, poc_recv_complete_fn deliver, void* user);

  /**
   * Dequeue a message, waiting for one.
   * Returns POC_OK after calling `deliver(user, POC_OK, &msg)` synchronously (`on_complete` is not
   * called); POC_PENDING (`*op` is written first; `on_complete(user, …)` then runs exactly once);
   * POC_CLOSED (closed and drained), POC_SHUTDOWN or POC_INVALID (NULL deliver/on_complete/op).
   */
  poc_status (*recv)(uint64_t handle, poc_recv_complete_fn deliver, poc_recv_complete_fn on_complete,
                     void* user, poc_op_id* op);

  /**
   * Request cancellation of a pending recv. Never blocks. The op still completes exactly once:
   * POC_CANCELLED when nothing was dequeued, or POC_OK with the message when it won the race (the
   * importer then keeps that message for its next receive: a message is never lost to a cancel).
   * Returns POC_OK (also for a completed or unknown op), POC_SHUTDOWN or POC_INVALID. Only ops
   * issued through this same port are reached.
   */
  poc_status (*cancel)(uint64_t handle, poc_op_id op);

  /**
   * Close the channel from the receiving side: pending and later sends fail with POC_CLOSED,
   * queued messages are dropped, pending recvs complete with POC_CLOSED. Idempotent.
   * Returns POC_OK, POC_SHUTDOWN or POC_INVALID. The port must still be released.
   */
  poc_status (*close)(uint64_t handle);

  /** Give the port back; implies close. Valid after shutdown. POC_OK, or POC_INVALID if stale. */
  poc_status (*release)(uint64_t handle);
} poc_receiver_vtable;

/**
 * A sender port: passed by value. `handle` is resolved by the exporter through its own table of
 * live ports (index + generation; 0 is never valid). Whoever holds a port owns one reference and
 * must `release` it exactly once.
 */
struct poc_sender {
  uint64_t handle;
  const poc_sender_vtable* vtable;
};

/** A receiver port: passed by value, owned like a sender port. */
struct poc_receiver {
  uint64_t handle;
  const poc_receiver_vtable* vtable;
};

/* ============================================================================================== */
/* Section - Futures (continuation-polled async calls, ARCHITECTURE.md §2.4)                       */
/* ============================================================================================== */

/**
 * Wake-up of a future that returned POC_PENDING from poll: "poll again, you can make progress".
 * Called exactly once per POC_PENDING, from any thread, never under an exporter lock. A wake that
 * happens while poll runs is not lost (the wake is then called, possibly before poll returns).
 * The caller polls again on its own executor; it must not poll from inside the wake.
 */
typedef void (*poc_wake_fn)(void* user);

typedef struct poc_future poc_future;

/** Functions of an exported future. Static, never freed. */
typedef struct poc_future_vtable {
  /** POC_ABI_VERSION of the exporter. */
  uint32_t abi_version;
  /** sizeof(poc_future_vtable) as the exporter was compiled. */
  uint32_t size;

  /**
   * Drive the future on the caller's thread.
   * Returns POC_OK, POC_ERROR or POC_PANIC when it finished: `deliver(user, status, &value)` has
   * then been called synchronously with the value (OK) or the error (id = code, data = UTF-8
   * message); POC_PENDING: `wake(user)` runs exactly once later; POC_CANCELLED: cancel was
   * requested, no more of the future ran; POC_SHUTDOWN: a runtime it needs has stopped;
   * POC_INVALID: bad handle, NULL wake/deliver, or polled again after it finished.
   */
  poc_status (*poll)(uint64_t handle, poc_wake_fn wake, poc_recv_complete_fn deliver, void* user);

  /**
   * Mark the future cancelled: the next poll returns POC_CANCELLED without running more of it.
   * A pending wake still runs exactly once. Never blocks. Returns POC_OK or POC_INVALID.
   */
  poc_status (*cancel)(uint64_t handle);

  /**
   * Give the future back (drops it, finished or not; an unfinished one is cancelled first).
   * A pending wake still runs exactly once. Returns POC_OK, or POC_INVALID if stale.
   */
  poc_status (*release)(uint64_t handle);
} poc_future_vtable;

/** A future: passed by value, released exactly once by whoever holds it. */
struct poc_future {
  uint64_t handle;
  const poc_future_vtable* vtable;
};

/**
 * An async function one runtime lends to another (a callback interface with one async method):
 * the borrower calls `call` to start a call and awaits the future it gets.
 *
 * Ownership: a poc_async_fn is owned by whoever holds it, like a future: the holder calls
 * `release(context)` exactly once when it will make no more calls (calls already started keep
 * their futures; those stay valid and are released on their own). The lender keeps `context`
 * valid until then. Functions that take a poc_async_fn by value take it over: they release it
 * exactly once, whatever they return.
 */
typedef struct poc_async_fn {
  /**
   * Start one call with argument `arg` (borrowed for the duration of `call` only). POC_OK: `*out`
   * is the call's future, owned by the caller from now on. Otherwise no call started and `*out`
   * is untouched: POC_INVALID (bad argument, NULL arg or out), POC_SHUTDOWN (the runtime the
   * calls run on is stopping), POC_PANIC (the lender failed). Any thread, concurrently; never
   * blocks on the call's work.
   */
  poc_status (*call)(void* context, const poc_message_view* arg, poc_future* out);
  /** The holder gives the function back; `context` is not used again. */
  void (*release)(void* context);
  void* context;
} poc_async_fn;

/*
 * The example lent function every runtime provides: "square" (poc_cpp_square_fn,
 * poc_rust_square_fn, Poc.Bridge's ExportedFunction.Square). For an argument {id = x}:
 *   x <= 2^32 - 1   value {id = x * x, data empty};
 *   x == 2^64 - 1   the callee fails inside the call's work (a Rust panic, a C++ exception, a .NET
 *                   exception): POC_PANIC with its message — to demonstrate containment;
 *   otherwise       POC_ERROR 400 "overflow".
 * How a call finishes is chosen when the function is made:
 */
/** Computed inside `call`: the first poll answers OK (or ERROR/PANIC); no wake, no thread hop. */
#define POC_SQUARE_READY 0u
/** Finished by another thread of the lender's runtime as soon as it can: the first poll usually
 *  answers PENDING and the wake comes from that thread. */
#define POC_SQUARE_POSTED 1u
/** Finished by the lender runtime's timer after `delay_ms` milliseconds. */
#define POC_SQUARE_TIMER 2u

/* ============================================================================================== */
/* Section - Agents (shared by every runtime's exports)                                           */
/* ============================================================================================== */

/**
 * Agents are small tasks that run inside one runtime against any port: a producer, a consumer,
 * an echo, the mayon timer. Producers number their messages `id = (stream << 48) | seq` with seq
 * from 0, and fill byte i of the payload with (uint8_t)(id + i); consumers check both.
 */
typedef uint64_t poc_agent_id;

/** What an agent did, handed to its done callback. */
typedef struct poc_agent_report {
  /** POC_OK: finished normally (a consumer saw POC_CLOSED after draining; a producer sent all).
   *  POC_CANCELLED: stopped by poc_*_agent_cancel. Anything else: the status that stopped it. */
  poc_status status;
  uint32_t reserved;
  /** Messages sent (producer, timer), received (consumer) or echoed (echo). */
  uint64_t messages;
  /** Wrapping sum of poc_message_checksum over those messages. */
  uint64_t checksum;
  /** Consumer: messages whose seq did not follow the previous one of its stream, or whose
   *  payload did not match the pattern. 0 for the other agents. */
  uint64_t order_errors;
} poc_agent_report;

/** Called exactly once when an agent ends, on a thread of the agent's runtime, never under a
 *  lock. `report` is borrowed for the call. */
typedef void (*poc_agent_done_fn)(void* user, const poc_agent_report* report);

/* ============================================================================================== */
/* Section - C++ runtime (Asio io_context), implemented in native-cpp/                            */
/* ============================================================================================== */

/** An io_context and the threads that run it. Opaque. */
typedef struct poc_cpp_runtime poc_cpp_runtime;

/** Start a runtime with `threads` threads (1..64) into `*out`. POC_OK, POC_INVALID, POC_PANIC. */
POC_API poc_status poc_cpp_runtime_new(uint32_t threads, poc_cpp_runtime** out);

/**
 * Shut down: cancel the runtime's agents and its in-flight imports, complete every pending op on
 * its ports with POC_SHUTDOWN, and join its threads. Idempotent; must not be called from one of
 * its own threads (POC_INVALID). Later port calls return POC_SHUTDOWN; release stays valid.
 */
POC_API poc_status poc_cpp_runtime_shutdown(poc_cpp_runtime* rt);

/** Shut down if needed and free. NULL is ignored. Ports handed out stay safe to release. */
POC_API void poc_cpp_runtime_free(poc_cpp_runtime* rt);

/**
 * A bounded asio::experimental::concurrent_channel of `capacity` (>= 1) messages, with payloads of
 * at most POC_DEFAULT_MAX_PAYLOAD bytes, exported as one sender and one receiver port.
 * POC_OK, POC_INVALID (NULL arguments, capacity 0), POC_SHUTDOWN.
 */
POC_API poc_status poc_cpp_channel_new(poc_cpp_runtime* rt, size_t capacity, poc_sender* tx,
                                       poc_receiver* rx);

/** As poc_cpp_channel_new with a payload limit of `max_payload` bytes (0 = the default). */
POC_API poc_status poc_cpp_channel_new_ex(poc_cpp_runtime* rt, size_t capacity, size_t max_payload,
                                          poc_sender* tx, poc_receiver* rx);

/**
 * Agents running on the C++ runtime. Each takes ownership of the ports given to it (it releases
 * them when it ends, so a producer that ends closes the channel if it held the last sender),
 * writes its id to `*out` (may be NULL) and calls `done` exactly once.
 * Returns POC_OK, POC_INVALID (NULL rt/done, bad port vtable) or POC_SHUTDOWN; on an error the
 * ports were not taken and `done` is not called.
 */
/** Send `count` messages of stream `stream` with `payload_len`-byte payloads, awaiting each. */
POC_API poc_status poc_cpp_producer_start(poc_cpp_runtime* rt, poc_sender tx, uint64_t stream,
                                          uint64_t count, size_t payload_len,
                                          poc_agent_done_fn done, void* user, poc_agent_id* out);
/** Receive until POC_CLOSED, checking per-stream order and payloads. */
POC_API poc_status poc_cpp_consumer_start(poc_cpp_runtime* rt, poc_receiver rx,
                                          poc_agent_done_fn done, void* user, poc_agent_id* out);
/** Receive from `rx` and send each message back unchanged to `tx` until `rx` reports CLOSED. */
POC_API poc_status poc_cpp_echo_start(poc_cpp_runtime* rt, poc_receiver rx, poc_sender tx,
                                      poc_agent_done_fn done, void* user, poc_agent_id* out);
/**
 * The mayon timer task: every `interval_ms` an asio::steady_timer fires and the task sends
 * {count, "From Cpp async task!!"} (count from 0), awaiting the send, until `max_count` messages
 * were sent (0 = until cancelled) or a send fails.
 */
POC_API poc_status poc_cpp_timer_start(poc_cpp_runtime* rt, poc_sender tx, uint32_t interval_ms,
                                       uint64_t max_count, poc_agent_done_fn done, void* user,
                                       poc_agent_id* out);
/** Ask an agent to stop; it ends with POC_CANCELLED unless it already ended. Never blocks.
 *  POC_OK (also for an agent that already ended) or POC_INVALID (NULL rt). */
POC_API poc_status poc_cpp_agent_cancel(poc_cpp_runtime* rt, poc_agent_id agent);

/* ============================================================================================== */
/* Section - Rust runtime (tokio), implemented in rust/poc-bridge                                 */
/* ============================================================================================== */

/** A tokio multi-thread runtime owned by the Rust side. Opaque. */
typedef struct poc_rust_runtime poc_rust_runtime;

/** Start a runtime with `worker_threads` workers (1..64) into `*out`. */
POC_API poc_status poc_rust_runtime_new(uint32_t worker_threads, poc_rust_runtime** out);
/** Same semantics as poc_cpp_runtime_shutdown. */
POC_API poc_status poc_rust_runtime_shutdown(poc_rust_runtime* rt);
/** Same semantics as poc_cpp_runtime_free. */
POC_API void poc_rust_runtime_free(poc_rust_runtime* rt);
/** A bounded tokio channel exported as ports; same semantics as poc_cpp_channel_new. */
POC_API poc_status poc_rust_channel_new(poc_rust_runtime* rt, size_t capacity, poc_sender* tx,
                                        poc_receiver* rx);
/** As poc_rust_channel_new with a payload limit (0 = the default). */
POC_API poc_status poc_rust_channel_new_ex(poc_rust_runtime* rt, size_t capacity,
                                           size_t max_payload, poc_sender* tx, poc_receiver* rx);
/** Agents on the Rust runtime; same semantics as the C++ ones. */
POC_API poc_status poc_rust_producer_start(poc_rust_runtime* rt, poc_sender tx, uint64_t stream,
                                           uint64_t count, size_t payload_len,
                                           poc_agent_done_fn done, void* user, poc_agent_id* out);
POC_API poc_status poc_rust_consumer_start(poc_rust_runtime* rt, poc_receiver rx,
                                           poc_agent_done_fn done, void* user, poc_agent_id* out);
POC_API poc_status poc_rust_echo_start(poc_rust_runtime* rt, poc_receiver rx, poc_sender tx,
                                       poc_agent_done_fn done, void* user, poc_agent_id* out);
POC_API poc_status poc_rust_agent_cancel(poc_rust_runtime* rt, poc_agent_id agent);

/* ============================================================================================== */
/* Section - Async calls exported by Rust (rust/poc-bridge/src/future, docs/contract.md "Futures") */
/* ============================================================================================== */

/*
 * The async calls of ARCHITECTURE.md §2.5, each returning a poc_future (Section - Futures) that
 * the caller polls, cancels and releases exactly once. A future's value is message-shaped; the
 * encodings are given per function. POC_ERROR values are {id = error code, data = UTF-8 message}.
 *
 * Where a future runs: futures that are pure computation, async locks or channel waits
 * (fetch_user, load_config, the Database methods) run on whichever thread polls them and need no
 * runtime; futures that need tokio's timer or reactor (sync_all) run as a task of a
 * poc_rust_runtime, and their poc_future only awaits that task (cancel/release aborts it).
 * String arguments are NUL-terminated UTF-8, copied before the call returns.
 */

/**
 * fetch_user(id) into `*out`. Value: id = the user id, data = the UTF-8 name (1 "alice",
 * 2 "bob", 42 "ada"). POC_ERROR 404 "user <id> not found" for another id >= 0; a negative id
 * panics inside the future (poll then returns POC_PANIC with the panic message), to demonstrate
 * containment. Yields once (its first poll returns POC_PENDING and wakes at once).
 * Returns POC_OK or POC_INVALID (NULL out).
 */
POC_API poc_status poc_rust_fetch_user(int32_t id, poc_future* out);

/**
 * load_config(path) into `*out`. Reads nothing from disk: the value is the synthetic config
 * id = 1 (config version), data = "path=<path>\nversion=1\nworkers=4\n"; POC_ERROR 400
 * "empty path" for "". Returns POC_OK or POC_INVALID (NULL or non-UTF-8 path, NULL out).
 */
POC_API poc_status poc_rust_load_config(const char* path, poc_future* out);

/**
 * Database::connect(url) into `*db`, a handle (0 is never valid) freed with
 * poc_rust_database_free. Nothing is opened: rows live in memory. Returns POC_OK or POC_INVALID
 * (NULL, non-UTF-8 or empty url, NULL db).
 */
POC_API poc_status poc_rust_database_connect(const char* url, uint64_t* db);

/**
 * Database::query(&self, sql) into `*out`: any sql starting with SELECT (case-insensitive)
 * returns every row — value id = row count, data = the rows joined by newlines (empty for none);
 * other sql gives POC_ERROR 400. Queries share the database's async lock (they wait for an
 * insert in progress). The future keeps the database alive after poc_rust_database_free.
 * Returns POC_OK or POC_INVALID (stale db, NULL or non-UTF-8 sql, NULL out).
 */
POC_API poc_status poc_rust_database_query(uint64_t db, const char* sql, poc_future* out);

/**
 * Database::insert(&mut self, row) into `*out`: takes the database's async lock exclusively
 * (inserts are serialised, in the order they first polled), yields once while holding it, then
 * appends `row`. Value: id = row count after the insert, data = the row. POC_ERROR 400 for an
 * empty row or one containing a newline. Cancelling or releasing it before it finished releases the
 * lock and appends nothing. Returns POC_OK or POC_INVALID as poc_rust_database_query.
 */
POC_API poc_status poc_rust_database_insert(uint64_t db, const char* row, poc_future* out);

/** Free a database handle (futures already made keep the object alive). POC_OK, or POC_INVALID
 *  for a stale handle (the handle is stale afterwards). */
POC_API poc_status poc_rust_database_free(uint64_t db);

/**
 * sync_all() into `*out`: a task spawned on `rt` that runs `steps` steps of `step_ms` ms
 * (tokio timer), counting each. Value: id = steps done, data = "synced <steps> items".
 * Cancel or release aborts the task (it stops before its next step); poll then returns
 * POC_CANCELLED. POC_SHUTDOWN from poll if the runtime stopped the task. Returns POC_OK,
 * POC_INVALID (NULL rt or out) or POC_SHUTDOWN (the runtime is stopping).
 */
POC_API poc_status poc_rust_sync_all(poc_rust_runtime* rt, uint32_t steps, uint32_t step_ms,
                                     poc_future* out);

/**
 * Progress of the sync_all future whose handle is `future` (valid until it is released):
 * `*steps_done` = steps completed; `*running` (may be NULL) = 1 while its task is alive, 0 once
 * it ended (finished, aborted by cancel/release, or stopped by shutdown) — `running` is read
 * first, so when it is 0 the count is final. POC_OK, or POC_INVALID (stale handle, a future
 * that is not a sync_all, NULL steps_done). Any thread; never blocks.
 */
POC_API poc_status poc_rust_sync_progress(uint64_t future, uint64_t* steps_done,
                                          uint32_t* running);

/**
 * The Rust "square" lent function (Section - Futures, POC_SQUARE_*) into `*out`. READY needs no
 * runtime (`rt` may be NULL); POSTED (a task spawned on `rt`) and TIMER (tokio's timer in a
 * task on `rt`) need `rt`. The function keeps a reference to `rt`'s shared state, so it may
 * outlive `rt`: calls made after `rt` began shutting down (or was freed) fail with POC_SHUTDOWN,
 * and calls in flight then answer POC_SHUTDOWN. The x == 2^64 - 1 case panics in the future.
 * Returns POC_OK, POC_INVALID (unknown mode, NULL rt for POSTED/TIMER, NULL out) or POC_SHUTDOWN
 * (`rt` is stopping).
 */
POC_API poc_status poc_rust_square_fn(poc_rust_runtime* rt, uint32_t mode, uint32_t delay_ms,
                                      poc_async_fn* out);

/**
 * sum_calls(f, first, count) into `*out`: a Rust async fn that awaits f({id = first + i}) for
 * i = 0 .. count-1, one call after the other, and adds up the values' ids (wrapping). Value:
 * id = the sum, data = "summed <count> calls". It runs on whichever thread polls it (no
 * runtime), awaiting each call's future with `.await` (ForeignFuture).
 * The first call that does not give a value ends it: POC_ERROR and POC_PANIC pass through with
 * the callee's code and the message prefixed "call <x>: "; POC_SHUTDOWN passes through (no
 * value); a call that could not start gives POC_ERROR 502 "call <x>: could not start (<STATUS>)",
 * one that answered CANCELLED/INVALID gives POC_ERROR 502 "call <x>: answered <STATUS>".
 * Cancel/release drops the call in flight (its future is cancelled, then released). `f` is
 * taken over (released once the future finished or was released, or at once if this fails).
 * Returns POC_OK or POC_INVALID (NULL f.call/f.release, NULL out).
 */
POC_API poc_status poc_rust_sum_calls(poc_async_fn f, uint64_t first, uint32_t count,
                                      poc_future* out);

/* ============================================================================================== */
/* Section - Async calls exported by C++ (native-cpp/src/future_export.cpp, contract "Futures")   */
/* ============================================================================================== */

/*
 * Asio async operations exported as poc_futures (Section - Futures), for Rust and C# to await.
 * Each operation runs on the io_context of a poc_cpp_runtime (on a strand of its own); its
 * poc_future only observes it: poll returns the outcome once the operation finished, otherwise
 * POC_PENDING, and the operation's completion calls the stored wake (on a runtime thread).
 * cancel emits the operation's Asio cancellation (per-operation cancellation slot) and the next
 * poll returns POC_CANCELLED; release cancels an unfinished operation. A C++ exception becomes
 * POC_PANIC. When the runtime shuts down, unfinished operations are cancelled and their futures'
 * polls return POC_SHUTDOWN. POC_ERROR values are {id = error code, data = UTF-8 message}.
 */

/**
 * delayed_square(x) into `*out`: an asio::steady_timer on `rt` waits `delay_ms` ms, then the
 * value is id = x * x, data = empty. POC_ERROR 400 "overflow" when x * x does not fit in 64 bits
 * (x > 2^32 - 1), except x == 2^64 - 1, which throws std::domain_error inside the operation
 * (POC_PANIC, to demonstrate containment). Returns POC_OK, POC_INVALID (NULL rt or out) or POC_SHUTDOWN (the runtime is
 * stopping; nothing was started).
 */
POC_API poc_status poc_cpp_delayed_square(poc_cpp_runtime* rt, uint64_t x, uint32_t delay_ms,
                                          poc_future* out);

/**
 * The C++ "square" lent function (Section - Futures, POC_SQUARE_*) into `*out`: READY computes
 * in the call (no io_context hop); POSTED completes from an asio::post to `rt`'s io_context;
 * TIMER waits `delay_ms` on an asio::steady_timer. The x == 2^64 - 1 case throws
 * std::domain_error inside the operation. The function keeps `rt`'s io_context alive until
 * released; calls made after `rt` began shutting down fail with POC_SHUTDOWN.
 * Returns POC_OK, POC_INVALID (unknown mode, NULL rt or out) or POC_SHUTDOWN.
 */
POC_API poc_status poc_cpp_square_fn(poc_cpp_runtime* rt, uint32_t mode, uint32_t delay_ms,
                                     poc_async_fn* out);

/**
 * sum_calls(f, first, count) into `*out`, as poc_rust_sum_calls (same value, same error rules)
 * but written as a C++20 coroutine on a strand of `rt`'s io_context that co_awaits each call's
 * future (poc::async_await). Cancel/release emits the coroutine's cancellation, which cancels
 * the call in flight. When `rt` shuts down, the operation answers POC_SHUTDOWN (also when that
 * shutdown cancelled or refused the call in flight). `f` is taken over (released once the operation finished, or at once if
 * this fails). Returns POC_OK, POC_INVALID (NULL rt, f.call, f.release or out) or POC_SHUTDOWN.
 */
POC_API poc_status poc_cpp_sum_calls(poc_cpp_runtime* rt, poc_async_fn f, uint64_t first,
                                     uint32_t count, poc_future* out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* POC_BRIDGE_H */
