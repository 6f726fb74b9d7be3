/*
 * A plain C program linked against libpoc_native.so: proves that the one shared library carries
 * both runtimes and that they interoperate through bridge.h alone. For every combination of
 * producer runtime x channel-owner runtime x consumer runtime among {C++, Rust} (8 cases), a
 * producer agent sends N numbered messages into the channel and a consumer agent drains it until
 * CLOSED; the consumer's count and checksum must equal the producer's, with no order errors.
 */
#include "poc/bridge.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { N = 3000, PAYLOAD = 40, CAPACITY = 4, LIMIT_S = 60 };

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  poc_agent_report report;
} waiter;

static void on_done(void* user, const poc_agent_report* r) {
  waiter* w = (waiter*)user;
  pthread_mutex_lock(&w->mu);
  w->done++;
  w->report = *r;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Waits (bounded) until the agent reported; returns 0 on time-out. */
static int wait_done(waiter* w) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += LIMIT_S;
  int rc = 0;
  pthread_mutex_lock(&w->mu);
  while (w->done == 0 && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&w->cv, &w->mu, &deadline);
  int ok = w->done == 1;
  pthread_mutex_unlock(&w->mu);
  return ok;
}

static poc_cpp_runtime* cpp;
static poc_rust_runtime* rust;
static const char* name_of[2] = {"C++", "Rust"};

static poc_status make_channel(int owner, poc_sender* tx, poc_receiver* rx) {
  return owner == 0 ? poc_cpp_channel_new(cpp, CAPACITY, tx, rx)
                    : poc_rust_channel_new(rust, CAPACITY, tx, rx);
}
static poc_status start_producer(int rt, poc_sender tx, waiter* w) {
  return rt == 0 ? poc_cpp_producer_start(cpp, tx, 7, N, PAYLOAD, on_done, w, NULL)
                 : poc_rust_producer_start(rust, tx, 7, N, PAYLOAD, on_done, w, NULL);
}
static poc_status start_consumer(int rt, poc_receiver rx, waiter* w) {
  return rt == 0 ? poc_cpp_consumer_start(cpp, rx, on_done, w, NULL)
                 : poc_rust_consumer_start(rust, rx, on_done, w, NULL);
}

static int run_case(int producer, int owner, int consumer) {
  waiter p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
  waiter c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
  poc_sender tx;
  poc_receiver rx;
  char label[64];
  snprintf(label, sizeof label, "%s -> %s channel -> %s", name_of[producer], name_of[owner],
           name_of[consumer]);
  if (make_channel(owner, &tx, &rx) != POC_OK) return printf("FAIL %s: channel\n", label), 1;
  if (start_consumer(consumer, rx, &c) != POC_OK) return printf("FAIL %s: consumer\n", label), 1;
  if (start_producer(producer, tx, &p) != POC_OK) return printf("FAIL %s: producer\n", label), 1;
  if (!wait_done(&p) || !wait_done(&c)) return printf("FAIL %s: agents did not end\n", label), 1;
  int ok = p.report.status == POC_OK && c.report.status == POC_OK && p.report.messages == N &&
           c.report.messages == N && c.report.checksum == p.report.checksum &&
           c.report.order_errors == 0;
  printf("%s %-34s sent %llu, received %llu, order errors %llu, checksums %s, %s/%s\n",
         ok ? "ok  " : "FAIL", label, (unsigned long long)p.report.messages,
         (unsigned long long)c.report.messages, (unsigned long long)c.report.order_errors,
         c.report.checksum == p.report.checksum ? "equal" : "DIFFER",
         poc_status_str(p.report.status), poc_status_str(c.report.status));
  return ok ? 0 : 1;
}

int main(void) {
  if (poc_abi_version() != POC_ABI_VERSION) return printf("FAIL abi version\n"), 1;
  if (poc_cpp_runtime_new(2, &cpp) != POC_OK || poc_rust_runtime_new(2, &rust) != POC_OK)
    return printf("FAIL runtimes\n"), 1;
  int failures = 0;
  for (int producer = 0; producer < 2; ++producer)
    for (int owner = 0; owner < 2; ++owner)
      for (int consumer = 0; consumer < 2; ++consumer)
        failures += run_case(producer, owner, consumer);
  if (poc_rust_runtime_shutdown(rust) != POC_OK || poc_cpp_runtime_shutdown(cpp) != POC_OK) {
    printf("FAIL shutdown\n");
    failures++;
  }
  poc_rust_runtime_free(rust);
  poc_cpp_runtime_free(cpp);
  printf("native_lib_smoke: %d passed, %d failed\n", 8 - (failures > 8 ? 8 : failures), failures);
  return failures == 0 ? 0 : 1;
}
