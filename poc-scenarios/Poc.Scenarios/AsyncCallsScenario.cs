// async-calls — every runtime awaits an async call exported by every other one: the
// continuation-polled futures of bridge.h "Section - Futures" (docs/async-calls.md, docs/contract.md
// "Futures"). One process, three runtimes: the .NET host, a CppRuntime (Asio io_context) and a
// RustRuntime (tokio).
//
// Protocol. For each of the 6 caller -> callee pairs of {C#, Rust, C++}, the callee lends its
// "square" function (bridge.h POC_SQUARE_*: x -> x*x; ERROR 400 "overflow" above 2^32 - 1; a
// panic/throw inside the call for 2^64 - 1) and the caller runs:
//   1. ready    N calls in READY mode (computed inside the call: the first poll answers, no
//               wake); the caller sums the values: Σ x² for x = 1..N must be N(N+1)(2N+1)/6.
//   2. posted   the same in POSTED mode: each call finishes on another thread of the callee's
//               runtime, whose wake makes the caller poll again.
//   3. timer    3 calls in TIMER mode (2 ms on the callee's timer): 1 + 4 + 9 = 14.
//   4. error    square(2^32): the callee's ERROR 400 "overflow" reaches the caller as its own
//               error type (a Rust/C++ caller passes it on with the prefix "call <x>: "; the C# host
//               sees RemoteCallException 400).
//   5. panic    square(2^64 - 1): the callee panics/throws inside the call; contained as PANIC
//               (InteropException with Status.Panic at the host); then square(3) = 9 on the same
//               runtime: it kept working.
//   6. cancel   a call that would take 30 s (TIMER), or for a C# callee a body that waits until its
//               CancellationToken fires, is cancelled by the host while pending: the caller ends
//               with OperationCanceledException, and a C# callee's token fired (the cancellation
//               crossed the caller's runtime and reached the callee).
// "C#" as the caller is ImportedFunction.CallAsync in a C# loop; "Rust" is poc_rust_sum_calls (a
// Rust async fn .awaiting each call); "C++" is poc_cpp_sum_calls (a C++20 coroutine co_awaiting
// each call on its io_context). The host starts each and awaits the outcome (bounded: 30 s).
// Then the BoltFFI async page's example calls: fetch_user, the Database object, sync_all cancelled mid-way (its
// progress stops short), delayed_square.
// Invariants: every value and error above, and each call ends exactly once (the host awaits each).
using System.Diagnostics;
using Poc.Bridge;

namespace Poc.Scenarios;

internal sealed class AsyncCallsScenario : Scenario
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private const ulong Overflowing = 1UL << 32;
    private const ulong Panicking = ulong.MaxValue;

    public override string Name => "async-calls";
    public override string Runtimes => "C# C++ Rust";
    public override string Description =>
        "every runtime awaits an async call in every other (6 directions): values, an error, a panic contained, a cancellation; then fetch_user, Database, sync_all";

    private ScenarioContext _ctx = null!;
    private long _calls;

    public override async Task RunAsync(ScenarioContext context)
    {
        _ctx = context;
        int n = (int)Math.Min(context.Options.Messages ?? 10, 100_000);
        await using var cpp = new CppRuntime(threads: 2);
        await using var rust = new RustRuntime(threads: 2);

        var callees = new Dictionary<string, Callee>
        {
            ["C#"] = new Callee(
                (mode, delay) => ExportedFunction.Square(mode, delay),
                cancellable => new ExportedFunction("wait-for-cancel", async (arg, ct) =>
                {
                    cancellable.Started.TrySetResult();
                    try
                    {
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        cancellable.TokenFired.TrySetResult();
                        throw;
                    }
                    return arg;
                })),
            ["Rust"] = new Callee((mode, delay) => RustCalls.SquareFunction(rust, mode, delay), null),
            ["C++"] = new Callee((mode, delay) => CppCalls.SquareFunction(cpp, mode, delay), null),
        };
        var callers = new Dictionary<string, Caller>
        {
            ["C#"] = (f, first, count, ct) => SumInCSharp((ImportedFunction)f, first, count, ct),
            ["Rust"] = (f, first, count, ct) => RustCalls.SumCallsAsync(f, first, count, ct).AsTask(),
            ["C++"] = (f, first, count, ct) => CppCalls.SumCallsAsync(cpp, f, first, count, ct).AsTask(),
        };

        _ctx.Line($"    N = {n} calls per sum; Σ x² for x = 1..N = {SumOfSquares(n)}");
        foreach (var (callerName, caller) in callers)
        {
            foreach (var (calleeName, callee) in callees)
            {
                if (callerName == calleeName) continue;
                await RunDirectionAsync($"{callerName} -> {calleeName}", caller, callee, n);
            }
        }
        await RunSeedExamplesAsync(cpp, rust);
        _ctx.Work = $"{_calls} calls";
    }

    /// <summary>The caller side: sum f(first .. first+count-1) and return the sum.</summary>
    private delegate Task<ulong> Caller(AsyncFunction f, ulong first, int count, CancellationToken ct);

    /// <summary>The callee side: its square function, and (C# only) a body that waits to be cancelled.</summary>
    private sealed record Callee(
        Func<SquareMode, TimeSpan, AsyncFunction> Square,
        Func<Cancellable, AsyncFunction>? WaitForCancel);

    private sealed class Cancellable
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource TokenFired { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private async Task RunDirectionAsync(string direction, Caller caller, Callee callee, int n)
    {
        ulong expected = SumOfSquares(n);
        await ExpectValueAsync(direction, $"ready:  Σ square(1..{n})", expected,
            ct => Call(caller, callee.Square(SquareMode.Ready, TimeSpan.Zero), 1, n, ct));
        await ExpectValueAsync(direction, $"posted: Σ square(1..{n})", expected,
            ct => Call(caller, callee.Square(SquareMode.Posted, TimeSpan.Zero), 1, n, ct));
        await ExpectValueAsync(direction, "timer:  Σ square(1..3), 2 ms each", 14,
            ct => Call(caller, callee.Square(SquareMode.Timer, TimeSpan.FromMilliseconds(2)), 1, 3, ct));
        await ExpectFailureAsync(direction, "error:  square(2^32)", "ERROR 400 …overflow",
            e => e is RemoteCallException { Code: 400 } r && r.RemoteMessage.EndsWith("overflow", StringComparison.Ordinal),
            ct => Call(caller, callee.Square(SquareMode.Posted, TimeSpan.Zero), Overflowing, 1, ct));
        await ExpectFailureAsync(direction, "panic:  square(2^64-1)", "PANIC",
            e => e is InteropException { Status: Status.Panic },
            ct => Call(caller, callee.Square(SquareMode.Posted, TimeSpan.Zero), Panicking, 1, ct));
        await ExpectValueAsync(direction, "after the panic: square(3)", 9,
            ct => Call(caller, callee.Square(SquareMode.Posted, TimeSpan.Zero), 3, 1, ct));
        await CancelWhilePendingAsync(direction, caller, callee);
    }

    private Task<ulong> Call(Caller caller, AsyncFunction f, ulong first, int count, CancellationToken ct)
    {
        _calls += count;
        return caller(f, first, count, ct);
    }

    private async Task CancelWhilePendingAsync(string direction, Caller caller, Callee callee)
    {
        using var cts = new CancellationTokenSource();
        Cancellable? observed = null;
        AsyncFunction f;
        string what;
        if (callee.WaitForCancel is { } make)
        {
            observed = new Cancellable();
            f = make(observed);
            what = "cancel: a C# body waiting on its token";
        }
        else
        {
            f = callee.Square(SquareMode.Timer, TimeSpan.FromSeconds(30));
            what = "cancel: square on a 30 s timer";
        }

        var clock = Stopwatch.StartNew();
        Task<ulong> call = Call(caller, f, 7, 1, cts.Token);
        if (observed is not null)
        {
            // Cancel only once the C# body runs: the cancellation must cross while work is going on.
            await Task.WhenAny(observed.Started.Task, call, Task.Delay(Bound));
            if (!_ctx.Check(observed.Started.Task.IsCompleted, $"{direction}: the C# callee's body started"))
                return;
        }
        _ctx.Check(!call.IsCompleted, $"{direction}: the call is pending before the cancel");
        cts.Cancel();

        string outcome;
        bool ok;
        try
        {
            ulong v = await call.WaitAsync(Bound);
            (outcome, ok) = ($"= {v} (not cancelled)", false);
        }
        catch (OperationCanceledException)
        {
            (outcome, ok) = ($"CANCELLED after {clock.Elapsed.TotalMilliseconds:F1} ms", true);
        }
        catch (TimeoutException)
        {
            (outcome, ok) = ($"no answer within {Bound.TotalSeconds} s", false);
        }
        catch (Exception e)
        {
            (outcome, ok) = (Describe(e), false);
        }
        if (observed is not null)
        {
            bool fired = await Completes(observed.TokenFired.Task);
            ok &= fired;
            outcome += fired ? "; the C# body's token fired" : "; the C# body's token did NOT fire";
        }
        Row(direction, what, outcome, ok, "CANCELLED");
    }

    private async Task RunSeedExamplesAsync(CppRuntime cpp, RustRuntime rust)
    {
        const string toRust = "C# -> Rust";
        await ExpectAsync(toRust, "fetch_user(42)", "ada", async ct => (await RustCalls.FetchUserAsync(42, ct)).Name);
        await ExpectFailureAsync(toRust, "fetch_user(7)", "ERROR 404",
            e => e is RemoteCallException { Code: 404 }, async ct => (ulong)(await RustCalls.FetchUserAsync(7, ct)).Id);

        using (RustDatabase db = RustDatabase.Connect("mem://scenario"))
        {
            await ExpectAsync(toRust, "db.insert(\"ada\"), db.insert(\"bob\")", "2 rows",
                async ct => { await db.InsertAsync("ada", ct); return $"{await db.InsertAsync("bob", ct)} rows"; });
            await ExpectAsync(toRust, "db.query(\"SELECT *\")", "ada,bob",
                async ct => string.Join(",", await db.QueryAsync("SELECT *", ct)));
        }

        // sync_all needs tokio's timer: it runs as a task of the Rust runtime. Cancel it mid-way
        // and check that it stopped (its progress no longer moves and is short of the total).
        const int steps = 200;
        using (var cts = new CancellationTokenSource())
        {
            RustSyncCall sync = RustCalls.StartSyncAll(rust, steps, stepMs: 5, cts.Token);
            using (sync)
            {
                var deadline = Stopwatch.StartNew();
                while (sync.ReadProgress().StepsDone < 3 && deadline.Elapsed < Bound && !sync.Completion.IsCompleted)
                    await Task.Delay(5);
                cts.Cancel();
                string outcome;
                bool ok;
                try
                {
                    await sync.Completion.WaitAsync(Bound);
                    (outcome, ok) = ("finished (not cancelled)", false);
                }
                catch (OperationCanceledException)
                {
                    SyncProgress p = sync.ReadProgress();
                    while (p.Running && deadline.Elapsed < Bound)
                    {
                        await Task.Delay(5);
                        p = sync.ReadProgress();
                    }
                    ok = !p.Running && p.StepsDone >= 3 && p.StepsDone < steps;
                    outcome = $"CANCELLED; the Rust task stopped after {p.StepsDone} of {steps} steps";
                }
                catch (Exception e)
                {
                    (outcome, ok) = (Describe(e), false);
                }
                _calls++;
                Row(toRust, $"sync_all({steps} x 5 ms), cancel at step 3", outcome, ok, "CANCELLED, stopped early");
            }
        }

        await ExpectValueAsync("C# -> C++", "delayed_square(12), 5 ms", 144,
            ct => CppCalls.DelayedSquareAsync(cpp, 12, TimeSpan.FromMilliseconds(5), ct).AsTask());
    }

    private static async Task<ulong> SumInCSharp(ImportedFunction f, ulong first, int count, CancellationToken ct)
    {
        using (f)
        {
            ulong sum = 0;
            for (int i = 0; i < count; i++)
                sum = unchecked(sum + (await f.CallAsync(new Message(first + (ulong)i), ct)).Id);
            return sum;
        }
    }

    private Task ExpectValueAsync(string direction, string what, ulong expected, Func<CancellationToken, Task<ulong>> run) =>
        ExpectAsync(direction, what, expected.ToString(), async ct => (await run(ct)).ToString());

    private async Task ExpectAsync(string direction, string what, string expected, Func<CancellationToken, Task<string>> run)
    {
        _calls++;
        string outcome;
        bool ok;
        try
        {
            string v = await run(CancellationToken.None).WaitAsync(Bound);
            (outcome, ok) = ($"= {v}", v == expected);
        }
        catch (TimeoutException)
        {
            (outcome, ok) = ($"no answer within {Bound.TotalSeconds} s", false);
        }
        catch (Exception e)
        {
            (outcome, ok) = (Describe(e), false);
        }
        Row(direction, what, outcome, ok, $"= {expected}");
    }

    private async Task ExpectFailureAsync(string direction, string what, string expected, Func<Exception, bool> matches,
        Func<CancellationToken, Task<ulong>> run)
    {
        string outcome;
        bool ok;
        try
        {
            ulong v = await run(CancellationToken.None).WaitAsync(Bound);
            (outcome, ok) = ($"= {v} (no error)", false);
        }
        catch (TimeoutException)
        {
            (outcome, ok) = ($"no answer within {Bound.TotalSeconds} s", false);
        }
        catch (Exception e)
        {
            (outcome, ok) = (Describe(e), matches(e));
        }
        Row(direction, what, outcome, ok, expected);
    }

    private void Row(string direction, string what, string outcome, bool ok, string expected)
    {
        _ctx.Line($"  {(ok ? "ok  " : "FAIL")} {direction,-12} {what,-40} {outcome}");
        _ctx.Check(ok, $"{direction}: {what}: expected {expected}, got {outcome}");
    }

    private static async Task<bool> Completes(Task t)
    {
        try
        {
            await t.WaitAsync(Bound);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private static string Describe(Exception e) => e switch
    {
        RemoteCallException r => $"ERROR {r.Code} \"{r.RemoteMessage}\"",
        InteropException { Status: Status.Panic } p => $"PANIC contained: {p.Message}",
        OperationCanceledException => "CANCELLED",
        InteropException i => $"{i.Status}: {i.Message}",
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    private static ulong SumOfSquares(int n)
    {
        ulong sum = 0;
        for (ulong x = 1; x <= (ulong)n; x++) sum = unchecked(sum + x * x);
        return sum;
    }
}
