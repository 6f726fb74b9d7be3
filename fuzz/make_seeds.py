#!/usr/bin/env python3
"""Writes the committed seed corpus fuzz/corpus/*.bin (one misuse family per file).

The seeds are programs in the fuzzer's input format (fuzz/README.md): an op byte, then the bytes
that op reads. The helpers below mirror how abi_fuzzer.cpp consumes them; a seed is only a
starting point (libFuzzer mutates it), but each one, run alone, exercises its family:

    build-fuzz/bin/poc_abi_fuzzer fuzz/corpus/<seed>.bin            # runs it once
    POC_FUZZ_TRACE=1 build-fuzz/bin/poc_abi_fuzzer fuzz/corpus/...  # prints every op

Run this script after changing the input format: python3 fuzz/make_seeds.py
"""
import os
import struct

# op codes (kOps in abi_fuzzer.cpp)
RT_NEW, RT_SHUTDOWN, RT_FREE, CHAN_NEW, TRY_SEND, SEND, S_CANCEL, S_CLOSE, S_CLONE, S_RELEASE, \
    TRY_RECV, RECV, R_CANCEL, R_CLOSE, R_RELEASE, FUT_NEW, FUT_POLL, FUT_CANCEL, FUT_RELEASE, \
    FN_NEW, FN_RELEASE, AGENT, MISC = range(23)

CPP, RUST = 1, 0


def u8(v):
    return bytes([v & 0xFF])


def u16(v):
    return struct.pack('<H', v & 0xFFFF)


def u32(v):
    return struct.pack('<I', v & 0xFFFFFFFF)


def u64(v):
    return struct.pack('<Q', v & 0xFFFFFFFFFFFFFFFF)


# ---- runtime argument (pick_rt): 0 persistent, 1 ephemeral, 2 NULL ------------------------------
PERSISTENT, EPHEMERAL, NULL_RT = 0, 1, 2


# ---- handle selectors (pick_handle): selector byte, pool index byte, extra bytes ----------------
def sel(case, cpp):
    """The selector byte for pick_handle case `case` (b % 12) whose bit 4 (b & 16) says which
    exporter's vtable to call when the case does not take it from an object."""
    return next(b for b in range(256) if b % 12 == case and bool(b & 16) == bool(cpp))


def h_live(i=0):
    return u8(0) + u8(i)


def h_stale(i=0):
    return u8(4) + u8(i)


def h_other_kind(i=0):
    return u8(5) + u8(i)


def h_zero(cpp=True):
    return u8(sel(6, cpp)) + u8(0)


def h_random(value, cpp=True):
    return u8(sel(7, cpp)) + u8(0) + u64(value)


def h_wrong_generation(i=0, r=12345):
    return u8(8) + u8(i) + u32(r)


def h_other_exporter(i=0):
    return u8(9) + u8(i)


def h_structured(variant=0, cpp=True):
    return u8(sel(10, cpp)) + u8(0) + u8(variant)


def h_other_tag(low, cpp=True):
    return u8(sel(11, cpp)) + u8(0) + u64(low)


ALL_FORGED = [h_zero(True), h_zero(False), h_random(0x1122334455667788, True),
              h_random(0x0123456789ABCDEF, False), h_wrong_generation(0), h_other_exporter(0),
              h_structured(0, True), h_structured(1, True), h_structured(2, True),
              h_structured(0, False), h_structured(1, False), h_other_tag(0x100000001, True),
              h_other_tag(0x100000001, False), h_other_kind(0), h_stale(0)]


# ---- messages (make_msg) -------------------------------------------------------------------------
def m_null():
    return u8(0)


def m_empty():  # NULL data, len 0: valid
    return u8(1)


def m_null_data(n=5):  # NULL data, len > 0: INVALID
    return u8(2) + u8(n - 1)


def m_small(n):
    return u8(3) + u8(n)


def m_max():  # len == the channel's max_payload
    return u8(5)


def m_max_plus_one():
    return u8(6)


def m_huge():  # SIZE_MAX or SIZE_MAX/2, not backed by bytes: over the limit
    return u8(7) + u8(0)


def m_u16(n):
    return u8(8) + u16(n)


# ---- ops -----------------------------------------------------------------------------------------
def rt_new(cpp, threads=1, null_out=False):
    # b: bit0 = C++; (b >> 1) % 6: 0 -> 0 threads, 1 -> 65, 2 -> UINT32_MAX, 3 -> 2, 4 -> 1
    t = {0: 0, 65: 1, 0xFFFFFFFF: 2, 2: 3, 1: 4}[threads]
    b = (cpp & 1) | (t << 1)
    if null_out:
        assert t == 4, 'NULL out is combined with 1 thread'
        b = (cpp & 1) | (58 << 1)
        assert (b >> 4) % 8 == 7 and (b >> 1) % 6 == 4
    return u8(RT_NEW) + u8(b)


def rt_shutdown(cpp, null=False):
    return u8(RT_SHUTDOWN) + u8((cpp & 1) | (0 if null else 2))


def rt_free(cpp, null=False):
    return u8(RT_FREE) + u8((cpp & 1) | (0 if null else 2))


CAP = {0: 0, 1: 1, 2: 2, 3: 3, 'max': 5, 'tokio_max': 6, 'tokio_max+1': 7}
MAXP = {'default': 0, 1: 1, 7: 7, 64: 3, 4096: 4, '16MiB': 5, 'SIZE_MAX': 6}


def chan_new(cpp, rt=PERSISTENT, cap=1, maxp='default', null_tx=False, null_rx=False, ex=True):
    b = (cpp & 1) | (rt << 1)
    extra = b''
    if cap in CAP:
        cs = CAP[cap]
    elif cap <= 16:
        cs, extra = 4, u8(cap - 1)
    else:
        cs, extra = 8, u16(cap - 1)
    extra2 = b''
    if maxp in MAXP:
        ms = MAXP[maxp]
    else:
        ms, extra2 = 7, u16(maxp)
    ns = 15 if null_tx else 14 if null_rx else 0
    if ex:
        ns |= 16
    return u8(CHAN_NEW) + u8(b) + u8(cs) + u8(ms) + u8(ns) + extra + extra2


def try_send(h, m):
    return u8(TRY_SEND) + h + m


def send(h, m, null_cb=False, null_op=False, re=0):
    f = 15 if null_cb else 14 if null_op else 0
    return u8(SEND) + h + m + u8(f) + u8(re)


def re_code(action):  # re-entrant action of a callback: 1 try_send, 2 try_recv, 3 cancel, 4 close
    return 7 | ((action - 1) << 3)


def op_mine(i=0):
    return u8(0) + u8(i)


def op_other_port(i=0):
    return u8(2) + u8(i)


def op_zero():
    return u8(3) + u8(0)


def op_random(v):
    return u8(4) + u8(0) + u64(v)


def s_cancel(h, op):
    return u8(S_CANCEL) + h + op


def s_close(h):
    return u8(S_CLOSE) + h


def s_clone(h, null_out=False):
    return u8(S_CLONE) + h + u8(7 if null_out else 0)


def s_release(h):
    return u8(S_RELEASE) + h


def try_recv(h, null_deliver=False, re=0, live=True):
    return u8(TRY_RECV) + h + u8(15 if null_deliver else 0) + (u8(re) if live and not null_deliver else b'')


def recv(h, null_deliver=False, null_cb=False, null_op=False, re=0, live=True):
    f = 15 if null_deliver else 14 if null_cb else 13 if null_op else 0
    return u8(RECV) + h + u8(f) + (u8(re) if live else b'')


def r_cancel(h, op):
    return u8(R_CANCEL) + h + op


def r_close(h):
    return u8(R_CLOSE) + h


def r_release(h):
    return u8(R_RELEASE) + h


# futures
def fetch_user(sel, null_out=False):  # sel: 0..6 = ids 1, 2, 42, 0, 7, -1, INT32_MIN
    return u8(FUT_NEW) + u8(0) + u8(15 if null_out else 0) + u8(sel)


def load_config(sel, null_out=False):  # sel: 0 NULL, 1 "", 2 not UTF-8, 3 SELECT.., 4 newline, 5 cfg-N
    return u8(FUT_NEW) + u8(1) + u8(15 if null_out else 0) + u8(sel)


def db_query(db_sel, sql_sel, insert=False, forged=False):
    ds = 3 if forged else db_sel * 4  # ds % 4 == 3: a forged handle (generation 0)
    return u8(FUT_NEW) + u8(3 if insert else 2) + u8(0) + u8(ds) + u8(sql_sel) + (u32(0x77) if forged else b'')


def sync_all(rt, steps, step_ms, null_out=False):
    return u8(FUT_NEW) + u8(4) + u8(15 if null_out else 0) + u8(rt) + u8(steps) + u8(step_ms)


def x_small(v):
    return u8(0) + u8(v)


X_2_32_MINUS_1, X_2_32, X_MAX, X_ZERO = u8(1), u8(2), u8(3), u8(5)


def delayed_square(rt, x, delay=0, long_delay=False, null_out=False):
    return u8(FUT_NEW) + u8(5) + u8(15 if null_out else 0) + u8(rt) + x + u8(7 if long_delay else delay)


ARG_OK, ARG_BYTES, ARG_NULL_DATA_LEN, ARG_NULL = 0, 5, 6, 7


def lent_call(fn_i, x, arg=ARG_OK, null_out=False):
    return u8(FUT_NEW) + u8(6) + u8(15 if null_out else 0) + u8(fn_i) + u8(arg) + x


def sum_calls(cpp, fn, first=1, count=3, rt=PERSISTENT, null_out=False):
    """fn: ('live', i) a square function the harness owns, or ('script', script, null_call,
    null_release) a scripted lender (script % 5: 0 SHUTDOWN, 1 PANIC, 2 status 42, 3 a Rust
    future, 4.. harness futures answering by script / 5 % 6: OK, PENDING+inline wake, ERROR,
    PANIC, SHUTDOWN, CANCELLED/INVALID)."""
    k = 8 if cpp else 7
    body = u8(rt) if cpp else b''
    if fn[0] == 'live':
        body += u8(1) + u8(fn[1])
    else:
        _, script, null_call, null_release = fn
        b = 15 if null_call else 30 if null_release else 0  # b % 3 == 0: a scripted lender
        body += u8(b) + u8(0) + u8(script)
    return u8(FUT_NEW) + u8(k) + u8(15 if null_out else 0) + body + u8(0) + u8(first) + u8(count)


def db_connect(url_sel, null_db=False):
    return u8(FUT_NEW) + u8(9) + u8(0) + u8(14 if null_db else 0) + u8(url_sel)


def db_free(i=0, forged=None):
    if forged is not None:
        return u8(FUT_NEW) + u8(9) + u8(0) + u8(7) + u64(forged)
    return u8(FUT_NEW) + u8(9) + u8(0) + u8(1) + u8(i)


def poll(h, null_wake=False, null_deliver=False):
    return u8(FUT_POLL) + h + u8(15 if null_wake else 14 if null_deliver else 0)


def f_cancel(h):
    return u8(FUT_CANCEL) + h


def f_release(h):
    return u8(FUT_RELEASE) + h


MODE = {'ready': 0, 'posted': 1, 'timer': 2, 3: 3, 'all_ones': 4, 7: 5}


def fn_new(cpp, rt, mode, delay=1, null_out=False):
    return u8(FN_NEW) + u8((cpp & 1) | (rt << 1)) + u8(MODE[mode]) + u8(delay) + u8(15 if null_out else 0)


def fn_release(i=0):
    return u8(FN_RELEASE) + u8(i)


PRODUCER, CONSUMER, ECHO, TIMER, AGENT_CANCEL = range(5)


def agent(cpp, kind, rt=PERSISTENT, vs=0, tx=0, rx=0, count=4, payload=8, interval=1):
    b = (cpp & 1) | (kind << 1)
    body = u8(rt) + u8(vs)
    if kind in (PRODUCER, ECHO, TIMER):  # (a Rust "timer" is a producer)
        body += u8(tx)
    if kind in (CONSUMER, ECHO):
        body += u8(rx)
    body += u8(count) + u8(0) + u8(payload)
    if kind == TIMER and cpp:
        body += u8(interval)
    return u8(AGENT) + u8(b) + body


def agent_cancel(cpp, rt=PERSISTENT, agent_id=None):
    return u8(AGENT) + u8((cpp & 1) | (AGENT_CANCEL << 1)) + u8(rt) + u8(1) + u64(agent_id or 0xDEAD)


VS_NULL_DONE, VS_BAD_ABI, VS_BAD_SIZE, VS_NULL_FN, VS_NULL_VTABLE = 15, 12, 13, 14, 11


def status_str(v):
    return u8(MISC) + u8(0) + u32(v)


def checksum(idv, with_data=True, n=13):
    return u8(MISC) + u8(1) + u64(idv) + u8(1 if with_data else 0) + (u8(n) if with_data else b'')


def sync_progress(h, null_steps=False, null_running=False):
    return u8(MISC) + u8(2) + h + u8(3 if null_steps else 2 if null_running else 0)


def wait(n=7):
    return u8(MISC) + u8(3) + u8(n)


# ---- the seeds -------------------------------------------------------------------------------------
SEEDS = {}


def seed(name, *ops):
    SEEDS[name] = b''.join(ops)


for cpp, tag in ((CPP, 'cpp'), (RUST, 'rust')):
    seed(f'{tag}-ports-basic',
         chan_new(cpp, cap=2), try_send(h_live(0), m_small(5)), send(h_live(0), m_small(9)),
         try_recv(h_live(0)), recv(h_live(0)), try_recv(h_live(0)), recv(h_live(0)),
         send(h_live(0), m_small(3)), wait(), s_release(h_live(0)), r_release(h_live(0)))
    seed(f'{tag}-stale-handles',
         chan_new(cpp), s_release(h_live(0)), r_release(h_live(0)),
         try_send(h_stale(0), m_small(4)), send(h_stale(0), m_small(4)), s_cancel(h_stale(0), op_zero()),
         s_close(h_stale(0)), s_clone(h_stale(0)), s_release(h_stale(0)),
         try_recv(h_stale(0), live=False), recv(h_stale(0), live=False), r_cancel(h_stale(0), op_zero()),
         r_close(h_stale(0)), r_release(h_stale(0)))
    seed(f'{tag}-double-release-close-twice',
         chan_new(cpp), s_clone(h_live(0)), s_close(h_live(0)), s_close(h_live(0)),
         try_send(h_live(1), m_small(1)), s_clone(h_live(0)), s_release(h_live(0)), s_release(h_stale(0)),
         r_close(h_live(0)), r_close(h_live(0)), r_release(h_live(0)), r_release(h_stale(0)))
    seed(f'{tag}-forged-handles',
         chan_new(cpp), fetch_user(0),
         *[try_send(h, m_small(2)) for h in ALL_FORGED],
         *[r_close(h) for h in ALL_FORGED],
         *[s_release(h) for h in ALL_FORGED],
         *[poll(h) for h in ALL_FORGED])
    seed(f'{tag}-null-arguments',
         chan_new(cpp), chan_new(cpp, null_tx=True), chan_new(cpp, null_rx=True), chan_new(cpp, rt=NULL_RT),
         try_send(h_live(0), m_null()), send(h_live(0), m_small(2), null_cb=True),
         send(h_live(0), m_small(2), null_op=True), send(h_live(0), m_null()),
         try_recv(h_live(0), null_deliver=True), recv(h_live(0), null_deliver=True),
         recv(h_live(0), null_cb=True), recv(h_live(0), null_op=True), s_clone(h_live(0), null_out=True))
    seed(f'{tag}-payload-sizes',
         chan_new(cpp, cap=8, maxp=7), try_send(h_live(0), m_empty()), try_send(h_live(0), m_null_data(3)),
         try_send(h_live(0), m_max()), try_send(h_live(0), m_max_plus_one()), try_send(h_live(0), m_huge()),
         send(h_live(0), m_huge()), send(h_live(0), m_max_plus_one()), send(h_live(0), m_u16(8)),
         chan_new(cpp, cap=2), try_send(h_live(1), m_max()), try_send(h_live(1), m_max_plus_one()),
         try_recv(h_live(0)), try_recv(h_live(0)), try_recv(h_live(1)))
    seed(f'{tag}-capacity-edges',
         chan_new(cpp, cap=0), chan_new(cpp, cap='max'), chan_new(cpp, cap='tokio_max'),
         chan_new(cpp, cap='tokio_max+1'), chan_new(cpp, cap=1),
         try_send(h_live(0), m_small(1)), try_send(h_live(0), m_small(1)), try_send(h_live(0), m_small(1)),
         try_recv(h_live(0)), try_recv(h_live(0)), send(h_live(0), m_small(1)), send(h_live(0), m_small(1)),
         send(h_live(0), m_small(1)), wait(), try_recv(h_live(0)), recv(h_live(0)), recv(h_live(0)))
    seed(f'{tag}-cancel-unknown-and-finished',
         chan_new(cpp, cap=1), try_send(h_live(0), m_small(1)), send(h_live(0), m_small(2)),
         s_cancel(h_live(0), op_zero()), s_cancel(h_live(0), op_random(0xFFFFFFFFFFFFFFFF)),
         s_clone(h_live(0)), s_cancel(h_live(1), op_other_port(0)), s_cancel(h_live(0), op_mine(0)),
         s_cancel(h_live(0), op_mine(0)), wait(), s_cancel(h_live(0), op_mine(0)),
         try_recv(h_live(0)), try_recv(h_live(0)), recv(h_live(0)), r_cancel(h_live(0), op_other_port(0)),
         r_cancel(h_live(0), op_mine(0)), r_cancel(h_live(0), op_mine(0)), recv(h_live(0)),
         r_cancel(h_live(0), op_random(123)))
    seed(f'{tag}-pending-then-release',
         chan_new(cpp, cap=1), try_send(h_live(0), m_small(1)), send(h_live(0), m_small(2)),
         send(h_live(0), m_small(3)), s_release(h_live(0)), chan_new(cpp, cap=1), recv(h_live(1)),
         recv(h_live(1)), r_release(h_live(1)), chan_new(cpp), recv(h_live(2)), s_release(h_live(2)))
    seed(f'{tag}-shutdown-then-calls',
         rt_new(cpp), chan_new(cpp, rt=EPHEMERAL, cap=1), try_send(h_live(0), m_small(1)),
         send(h_live(0), m_small(1)), chan_new(cpp, rt=EPHEMERAL), recv(h_live(1)),
         rt_shutdown(cpp), rt_shutdown(cpp), rt_shutdown(cpp, null=True),
         try_send(h_live(0), m_small(1)), send(h_live(0), m_small(1)), s_close(h_live(0)), s_clone(h_live(0)),
         s_cancel(h_live(0), op_mine(0)), try_recv(h_live(0)), recv(h_live(0)), r_close(h_live(0)),
         chan_new(cpp, rt=EPHEMERAL), s_release(h_live(0)), r_release(h_live(0)))
    seed(f'{tag}-free-then-calls',
         rt_new(cpp), chan_new(cpp, rt=EPHEMERAL, cap=1), send(h_live(0), m_small(4)),
         send(h_live(0), m_small(4)), rt_free(cpp), rt_free(cpp, null=True),
         try_send(h_live(0), m_small(1)), recv(h_live(0)), s_release(h_live(0)), r_release(h_live(0)),
         rt_new(cpp), chan_new(cpp, rt=EPHEMERAL))
    seed(f'{tag}-runtime-new-bad-args',
         rt_new(cpp, threads=0), rt_new(cpp, threads=65), rt_new(cpp, threads=0xFFFFFFFF),
         rt_new(cpp, null_out=True), rt_new(cpp, threads=2), rt_free(cpp))
    seed(f'{tag}-reentrant-callbacks',
         chan_new(cpp, cap=1), recv(h_live(0), re=re_code(1)), try_send(h_live(0), m_small(2)), wait(),
         try_send(h_live(0), m_small(2)), recv(h_live(0), re=re_code(2)), try_send(h_live(0), m_small(2)),
         try_recv(h_live(0), re=re_code(2)), send(h_live(0), m_small(1), re=re_code(3)),
         send(h_live(0), m_small(1), re=re_code(4)), try_recv(h_live(0)), wait(), recv(h_live(0)))
    seed(f'{tag}-agents-bad-vtables',
         chan_new(cpp), *[agent(cpp, k, vs=vs) for k in (PRODUCER, CONSUMER, ECHO, TIMER)
                          for vs in (VS_NULL_DONE, VS_BAD_ABI, VS_BAD_SIZE, VS_NULL_FN, VS_NULL_VTABLE)],
         agent(cpp, PRODUCER, rt=NULL_RT), agent_cancel(cpp), agent_cancel(cpp, rt=NULL_RT),
         try_send(h_live(0), m_small(1)), try_recv(h_live(0)))
    seed(f'{tag}-agents-cross-runtime',
         chan_new(1 - cpp, cap=2), agent(cpp, PRODUCER, count=8), agent(cpp, CONSUMER), wait(),
         chan_new(cpp, cap=1), chan_new(1 - cpp, cap=1), agent(cpp, ECHO, tx=0, rx=1),
         try_send(h_live(0), m_small(3)), wait(), try_recv(h_live(0)))

seed('cpp-timer-agent-after-shutdown',
     rt_new(CPP), chan_new(CPP, rt=EPHEMERAL), agent(CPP, TIMER, rt=EPHEMERAL, count=3), wait(),
     rt_shutdown(CPP), agent(CPP, TIMER, rt=EPHEMERAL), try_recv(h_live(0)))
seed('futures-fetch-user',
     *[fetch_user(i) for i in range(7)], fetch_user(0, null_out=True),
     *[poll(h_live(i)) for i in range(7)], *[poll(h_live(i)) for i in range(7)],
     poll(h_live(0)), f_cancel(h_live(1)), poll(h_live(1)), f_release(h_live(2)), f_release(h_stale(0)),
     poll(h_stale(0)), f_cancel(h_stale(0)))
seed('futures-cancel-and-release-order',
     fetch_user(2), f_cancel(h_live(0)), poll(h_live(0)), poll(h_live(0)), f_cancel(h_live(0)),
     f_release(h_live(0)), fetch_user(5), poll(h_live(0)), f_release(h_live(0)),
     fetch_user(0), poll(h_live(0)), f_cancel(h_live(0)), poll(h_live(0)), f_release(h_live(0)),
     poll(h_live(0), null_wake=True), poll(h_live(0), null_deliver=True))
seed('futures-delayed-square',
     delayed_square(PERSISTENT, x_small(7)), delayed_square(PERSISTENT, X_2_32_MINUS_1, 2),
     delayed_square(PERSISTENT, X_2_32), delayed_square(PERSISTENT, X_MAX),
     delayed_square(PERSISTENT, X_ZERO, long_delay=True), delayed_square(NULL_RT, X_ZERO),
     delayed_square(PERSISTENT, X_ZERO, null_out=True),
     *[poll(h_live(i)) for i in range(5)], wait(), *[poll(h_live(i)) for i in range(5)],
     f_cancel(h_live(4)), poll(h_live(4)), f_release(h_live(4)), poll(h_other_exporter(0)))
seed('futures-delayed-square-shutdown',
     rt_new(CPP), delayed_square(EPHEMERAL, x_small(3), long_delay=True), poll(h_live(0)),
     delayed_square(EPHEMERAL, x_small(4)), rt_shutdown(CPP), poll(h_live(0)), poll(h_live(0)),
     poll(h_live(1)), delayed_square(EPHEMERAL, x_small(5)), rt_free(CPP), f_release(h_live(0)))
seed('futures-sync-all',
     sync_all(PERSISTENT, 3, 1), sync_all(NULL_RT, 1, 1), sync_all(PERSISTENT, 1, 1, null_out=True),
     sync_progress(h_live(0)), sync_progress(h_live(0), null_steps=True),
     sync_progress(h_live(0), null_running=True), poll(h_live(0)), wait(), poll(h_live(0)),
     f_cancel(h_live(0)), sync_progress(h_live(0)), poll(h_live(0)), fetch_user(0),
     sync_progress(h_live(1)), rt_new(RUST), sync_all(EPHEMERAL, 4, 3), poll(h_live(2)),
     rt_shutdown(RUST), poll(h_live(2)), sync_all(EPHEMERAL, 1, 1))
seed('futures-load-config-and-database',
     *[load_config(i) for i in range(6)], *[poll(h_live(i)) for i in range(3)],
     *[poll(h_live(i)) for i in range(3)], db_connect(0), db_connect(1), db_connect(2), db_connect(5),
     db_connect(3, null_db=True), db_query(0, 3), db_query(0, 3, insert=True), db_query(0, 5, insert=True),
     db_query(0, 4, insert=True), db_query(0, 0), db_query(0, 2), db_query(0, 3, forged=True),
     *[poll(h_live(i)) for i in range(3, 8)], *[poll(h_live(i)) for i in range(3, 8)],
     db_free(0), db_free(0), db_free(forged=0x4400000000000001), db_query(0, 3))
for cpp, tag in ((CPP, 'cpp'), (RUST, 'rust')):
    seed(f'{tag}-lent-square-functions',
         fn_new(cpp, PERSISTENT, 'ready'), fn_new(cpp, PERSISTENT, 'posted'), fn_new(cpp, PERSISTENT, 'timer'),
         fn_new(cpp, NULL_RT, 'ready'), fn_new(cpp, NULL_RT, 'posted'), fn_new(cpp, PERSISTENT, 3),
         fn_new(cpp, PERSISTENT, 'all_ones'), fn_new(cpp, PERSISTENT, 'ready', null_out=True),
         lent_call(0, x_small(9)), lent_call(1, X_MAX), lent_call(2, X_2_32), lent_call(0, x_small(1), ARG_NULL),
         lent_call(1, x_small(1), ARG_NULL_DATA_LEN), lent_call(2, x_small(1), ARG_BYTES),
         lent_call(0, x_small(1), null_out=True), *[poll(h_live(i)) for i in range(4)], wait(),
         *[poll(h_live(i)) for i in range(4)], fn_release(0), fn_release(0))
    seed(f'{tag}-lent-function-outlives-runtime',
         rt_new(cpp), fn_new(cpp, EPHEMERAL, 'timer', delay=5), fn_new(cpp, EPHEMERAL, 'posted'),
         lent_call(0, x_small(2)), poll(h_live(0)), rt_free(cpp), lent_call(0, x_small(3)),
         lent_call(1, x_small(3), ARG_NULL_DATA_LEN), poll(h_live(0)), sum_calls(1 - cpp, ('live', 0)),
         poll(h_live(1)), poll(h_live(1)), fn_release(0))
    seed(f'{tag}-sum-calls-square',
         fn_new(1 - cpp, PERSISTENT, 'posted'), fn_new(1 - cpp, PERSISTENT, 'ready'),
         fn_new(cpp, PERSISTENT, 'timer', 2), sum_calls(cpp, ('live', 0), first=1, count=4),
         sum_calls(cpp, ('live', 0), first=0, count=0), sum_calls(cpp, ('live', 0), first=250, count=5),
         *[poll(h_live(i)) for i in range(3)], wait(), *[poll(h_live(i)) for i in range(3)],
         f_cancel(h_live(0)), f_release(h_live(1)), poll(h_live(0)))
    seed(f'{tag}-sum-calls-scripted-lenders',
         *[sum_calls(cpp, ('script', s, False, False), count=2) for s in range(0, 35, 1)][:12],
         sum_calls(cpp, ('script', 4, True, False)), sum_calls(cpp, ('script', 4, False, True)),
         sum_calls(cpp, ('script', 4, False, False), null_out=True),
         *[poll(h_live(i)) for i in range(10)], wait(), *[poll(h_live(i)) for i in range(10)],
         *[f_release(h_live(0)) for _ in range(3)])
seed('cpp-sum-calls-runtime-misuse',
     fn_new(RUST, NULL_RT, 'ready'), sum_calls(CPP, ('live', 0), rt=NULL_RT),
     rt_new(CPP), fn_new(RUST, NULL_RT, 'ready'), rt_shutdown(CPP), sum_calls(CPP, ('live', 0), rt=EPHEMERAL),
     sum_calls(CPP, ('script', 9, False, False), rt=EPHEMERAL))
seed('future-handle-misuse',
     chan_new(CPP), chan_new(RUST), fetch_user(0), delayed_square(PERSISTENT, x_small(2)),
     poll(h_other_kind(0)), poll(h_other_kind(1)), poll(h_other_exporter(0)), poll(h_other_exporter(1)),
     poll(h_wrong_generation(0)), poll(h_wrong_generation(1)), f_cancel(h_other_kind(0)),
     f_release(h_other_kind(1)), try_send(h_other_kind(0), m_small(1)), s_release(h_other_kind(0)),
     r_release(h_other_kind(0)), f_release(h_live(0)), f_release(h_live(0)), f_release(h_stale(0)))
seed('misc-status-and-checksum',
     status_str(0), status_str(9), status_str(10), status_str(-1), status_str(0x7FFFFFFF),
     checksum(0, with_data=False), checksum(42, n=0), checksum(0xFFFFFFFFFFFFFFFF, n=13), checksum(7, n=64))
# Reproducers of the defects this fuzzer found (see fuzz/README.md "Findings").
seed('regress-cpp-square-call-null-data',
     fn_new(CPP, PERSISTENT, 'timer'), fn_new(CPP, PERSISTENT, 'ready'),
     lent_call(0, x_small(2), ARG_NULL_DATA_LEN), lent_call(1, x_small(2), ARG_NULL_DATA_LEN))
seed('regress-cpp-agent-null-function-vtable',
     chan_new(CPP), chan_new(RUST),
     agent(CPP, PRODUCER, vs=VS_NULL_FN, tx=0), agent(CPP, CONSUMER, vs=VS_NULL_FN, rx=1),
     agent(CPP, TIMER, vs=VS_NULL_FN, tx=1), agent(CPP, ECHO, vs=VS_NULL_FN | 32, tx=0, rx=0),
     agent(RUST, PRODUCER, vs=VS_NULL_FN, tx=0), try_send(h_live(0), m_small(1)))

# The race is timing-dependent: this seed drives the path (a C++ agent on an ephemeral runtime
# importing a persistent runtime's port, freed while the import is in flight), repeatedly.
seed('regress-cpp-agent-import-runtime-freed',
     *[b''.join([rt_new(CPP), chan_new(CPP, cap=1), chan_new(RUST, cap=1),
                 agent(CPP, CONSUMER, rt=EPHEMERAL, rx=0), agent(CPP, PRODUCER, rt=EPHEMERAL, tx=1, count=9),
                 try_send(h_live(0), m_small(1)), rt_free(CPP)]) for _ in range(6)])


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f.endswith('.bin'):
            os.remove(os.path.join(out, f))
    for name, data in sorted(SEEDS.items()):
        assert len(data) <= 1024, (name, len(data))
        with open(os.path.join(out, name + '.bin'), 'wb') as fh:
            fh.write(data)
    print(f'{len(SEEDS)} seeds in {out}')


if __name__ == '__main__':
    main()
