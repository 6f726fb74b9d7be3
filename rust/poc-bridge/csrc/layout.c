/*
 * What a C compiler makes of bridge.h: every constant, and the size, alignment and field offsets
 * of every type. Linked only into the Rust test binaries (build.rs: rustc-link-arg-tests); the
 * `layout` test compares this table with the Rust declarations in src/ffi.rs and checks that it
 * covers every #define and every struct field of the header.
 */
#include <stddef.h>
#include <stdint.h>

#include "poc/bridge.h"

typedef struct poc_layout_entry {
  const char* name;
  uint64_t value;
} poc_layout_entry;

#define CONSTANT(c) {#c, (uint64_t)(c)}
#define TYPE(t) {"sizeof(" #t ")", sizeof(t)}, {"alignof(" #t ")", _Alignof(t)}
#define FIELD(t, f) {"offsetof(" #t "." #f ")", offsetof(t, f)}

static const poc_layout_entry entries[] = {
    CONSTANT(POC_ABI_VERSION),
    CONSTANT(POC_OK),
    CONSTANT(POC_PENDING),
    CONSTANT(POC_FULL),
    CONSTANT(POC_EMPTY),
    CONSTANT(POC_CLOSED),
    CONSTANT(POC_CANCELLED),
    CONSTANT(POC_SHUTDOWN),
    CONSTANT(POC_ERROR),
    CONSTANT(POC_INVALID),
    CONSTANT(POC_PANIC),
    CONSTANT(POC_DEFAULT_MAX_PAYLOAD),
    CONSTANT(POC_SQUARE_READY),
    CONSTANT(POC_SQUARE_POSTED),
    CONSTANT(POC_SQUARE_TIMER),

    TYPE(poc_status),
    TYPE(poc_op_id),
    TYPE(poc_agent_id),
    TYPE(poc_send_complete_fn),
    TYPE(poc_recv_complete_fn),
    TYPE(poc_wake_fn),
    TYPE(poc_agent_done_fn),

    TYPE(poc_message_view),
    FIELD(poc_message_view, id),
    FIELD(poc_message_view, data),
    FIELD(poc_message_view, len),

    TYPE(poc_sender_vtable),
    FIELD(poc_sender_vtable, abi_version),
    FIELD(poc_sender_vtable, size),
    FIELD(poc_sender_vtable, try_send),
    FIELD(poc_sender_vtable, send),
    FIELD(poc_sender_vtable, cancel),
    FIELD(poc_sender_vtable, close),
    FIELD(poc_sender_vtable, clone),
    FIELD(poc_sender_vtable, release),

    TYPE(poc_receiver_vtable),
    FIELD(poc_receiver_vtable, abi_version),
    FIELD(poc_receiver_vtable, size),
    FIELD(poc_receiver_vtable, try_recv),
    FIELD(poc_receiver_vtable, recv),
    FIELD(poc_receiver_vtable, cancel),
    FIELD(poc_receiver_vtable, close),
    FIELD(poc_receiver_vtable, release),

    TYPE(poc_sender),
    FIELD(poc_sender, handle),
    FIELD(poc_sender, vtable),

    TYPE(poc_receiver),
    FIELD(poc_receiver, handle),
    FIELD(poc_receiver, vtable),

    TYPE(poc_future_vtable),
    FIELD(poc_future_vtable, abi_version),
    FIELD(poc_future_vtable, size),
    FIELD(poc_future_vtable, poll),
    FIELD(poc_future_vtable, cancel),
    FIELD(poc_future_vtable, release),

    TYPE(poc_future),
    FIELD(poc_future, handle),
    FIELD(poc_future, vtable),

    TYPE(poc_async_fn),
    FIELD(poc_async_fn, call),
    FIELD(poc_async_fn, release),
    FIELD(poc_async_fn, context),

    TYPE(poc_agent_report),
    FIELD(poc_agent_report, status),
    FIELD(poc_agent_report, reserved),
    FIELD(poc_agent_report, messages),
    FIELD(poc_agent_report, checksum),
    FIELD(poc_agent_report, order_errors),
};

/* The table and its length. */
const poc_layout_entry* poc_layout_entries(size_t* count) {
  *count = sizeof entries / sizeof entries[0];
  return entries;
}
