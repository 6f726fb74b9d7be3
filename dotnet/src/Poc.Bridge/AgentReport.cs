namespace Poc.Bridge;

/// <summary>What an agent did (bridge.h <c>poc_agent_report</c>), whichever runtime ran it.</summary>
/// <param name="Status"><see cref="Bridge.Status.Ok"/> when it finished normally,
/// <see cref="Bridge.Status.Cancelled"/> when stopped, otherwise the status that stopped it.</param>
/// <param name="Messages">Messages sent (producer), received (consumer) or echoed (echo).</param>
/// <param name="Checksum">Wrapping sum of <see cref="MessageChecksum.Of"/> over those messages.</param>
/// <param name="OrderErrors">Consumer: messages out of per-stream order or with a broken payload.</param>
public readonly record struct AgentReport(Status Status, ulong Messages, ulong Checksum, ulong OrderErrors);
