/* Compiled alone as C11 and as C++20 by CTest: proves bridge.h is self-contained. */
#include "poc/bridge.h"

/* Layout the other runtimes rely on (checked again from Rust and C#). */
#if defined(__cplusplus)
#define POC_STATIC_ASSERT static_assert
#else
#define POC_STATIC_ASSERT _Static_assert
#endif
POC_STATIC_ASSERT(sizeof(poc_status) == 4, "poc_status is 32-bit");
POC_STATIC_ASSERT(sizeof(poc_message_view) == 8 + 2 * sizeof(void*), "message view layout");
POC_STATIC_ASSERT(sizeof(poc_sender) == 8 + sizeof(void*), "sender port layout");
POC_STATIC_ASSERT(sizeof(poc_receiver) == 8 + sizeof(void*), "receiver port layout");
POC_STATIC_ASSERT(sizeof(poc_agent_report) == 32, "agent report layout");
POC_STATIC_ASSERT(sizeof(poc_sender_vtable) == 8 + 6 * sizeof(void*), "sender vtable layout");
POC_STATIC_ASSERT(sizeof(poc_receiver_vtable) == 8 + 5 * sizeof(void*), "receiver vtable layout");
POC_STATIC_ASSERT(sizeof(poc_future_vtable) == 8 + 3 * sizeof(void*), "future vtable layout");

int poc_header_only_anchor(void);
int poc_header_only_anchor(void) { return (int)POC_ABI_VERSION; }
