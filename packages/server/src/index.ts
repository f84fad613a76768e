/**
 * `@imi/server`: the intermediary. It holds users' connections so the app
 * can crash, restart or be redeployed without anyone being disconnected.
 *
 * @packageDocumentation
 */
export { Intermediary } from './intermediary.js';
export {
  type ListeningPorts,
  type IntermediaryStats,
  type IntermediaryEvents,
  type DropReason,
  type SessionQueues,
  type IntermediaryApi,
  type IntermediaryPlugin,
} from './api.js';
export { createHooks, type Session, type AppInfo, type Refusal, type IntermediaryHooks } from './hooks.js';
export { WelcomeBannerPlugin, AppDownNoticePlugin, IdleTimeoutPlugin } from './plugins.js';
export { resolveOptions } from './resolve-options.js';
export {
  DEFAULT_OPTIONS,
  DEFAULT_EXTERNAL_PORT,
  DEFAULT_CLIENT_PORT,
  DEFAULT_HOST,
  DEFAULT_CLIENT_HOST,
  DEFAULT_ADMIN_HOST,
  DEFAULT_BACKLOG,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_HELLO_TIMEOUT_MS,
  DEFAULT_LEGACY_HELLO_WAIT_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_MAX_QUEUED_LINES_PER_SESSION,
  DEFAULT_MAX_QUEUED_BYTES_PER_SESSION,
  DEFAULT_MAX_QUEUED_BYTES_TOTAL,
  DEFAULT_MAX_UNACKED_TOTAL,
  DEFAULT_MAX_DEP_TXNS,
  DEFAULT_MAX_HELD_MESSAGES,
  DEFAULT_DEP_WAIT_TIMEOUT_MS,
  DEFAULT_PROCESSED_TXN_MEMORY,
  DEFAULT_MAX_OUTPUT_BUFFER_BYTES,
  DEFAULT_MAX_APP_BUFFER_BYTES,
  DEFAULT_MAX_ERROR_FRAMES_PER_SECOND,
  DEFAULT_ERROR_FRAME_BURST,
  DEFAULT_MAX_ERROR_LOG_LINES_PER_SECOND,
  DEFAULT_ERROR_LOG_BURST,
  DEFAULT_ERROR_SUMMARY_INTERVAL_MS,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_HALF_CLOSE_GRACE_MS,
  DEFAULT_KEEP_ALIVE_MS,
  DEFAULT_TELNET_PROBE_MS,
  DEFAULT_WS_RESUME_BUFFER_BYTES,
  DEFAULT_WS_RESUME_WINDOW_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_IP,
  DEFAULT_CONNECT_RATE_PER_IP,
  DEFAULT_INPUT_RATE_PER_SESSION,
  DEFAULT_INPUT_BURST_PER_SESSION,
  DEFAULT_MAX_DELAYED_LINES_PER_SESSION,
  DEFAULT_REFUSED_NOTICE,
  DEFAULT_RATE_LIMIT_NOTICE,
  DEFAULT_APP_DOWN_NOTICE,
  DEFAULT_SHUTDOWN_NOTICE,
  DEFAULT_LINE_TOO_LONG_NOTICE,
  DEFAULT_QUEUE_FULL_NOTICE,
  DEFAULT_PROXY_HEADER_TIMEOUT_MS,
  DEFAULT_PROXY_TRUSTED_ADDRESSES,
  DEFAULT_MSSP_NAME,
  type IntermediaryOptions,
  type ResolvedOptions,
  type AppPolicy,
  type WhileAppDownPolicy,
} from './options.js';
export { LineSplitter, type LineSink, type LineState } from './users/line-splitter.js';
export { createTransport } from './users/create-transport.js';
export {
  isTransport,
  transportName,
  socketErrorReason,
  NULL_SINK,
  DEFAULT_TELNET_NEGOTIATION_MS,
  DEFAULT_WS_MAX_PAYLOAD_BYTES,
  DEFAULT_WS_PING_INTERVAL_MS,
  DEFAULT_SSH_HOST_KEY_FILE,
  type Transport,
  type TransportAddress,
  type TransportContext,
  type ProxyProtocolSettings,
  type UserChannel,
  type ChannelSink,
  type ListenerOptions,
  type TcpListenerOptions,
  type TelnetListenerOptions,
  type WsListenerOptions,
  type SshListenerOptions,
  type TlsFiles,
} from './users/transport.js';
export {
  TelnetSession,
  escapeIac,
  NvtEncoder,
  TELNET,
  TELNET_OPTION,
  DEFAULT_MAX_SUBNEGOTIATION_BYTES,
  MAX_TTYPE_REQUESTS,
  type TelnetSink,
  type TelnetSessionOptions,
  type TelnetParserState,
} from './users/telnet/telnet.js';
export { ServerStatus, MsspOption, encodeMssp, encodeMsspText, MSSP_OPTION, MSSP_VAR, MSSP_VAL, type MsspTable } from './users/telnet/mssp.js';
export { MsdpOption, decodeMsdp, encodeMsdp, MSDP, MSDP_OPTION, MAX_MSDP_DEPTH } from './users/telnet/msdp.js';
export type { TelnetExtension } from './users/telnet/telnet-extension.js';
export type { TelnetInfo, MsspValue, SshLogin } from '@imi/core';
export {
  AdminServer,
  ADMIN_MAX_BODY_BYTES,
  ADMIN_DEFAULT_SESSIONS_LIMIT,
  ADMIN_MAX_SESSIONS_LIMIT,
  type AdminServerOptions,
  type AdminSessionInfo,
  type AdminStatsResponse,
} from './ops/admin.js';
export { IntermediaryMetrics, ROUND_TRIP_BUCKETS_SECONDS, RESYNC_BUCKETS_SECONDS, type IntermediaryMetricsOptions } from './ops/metrics.js';
export { Admission, TokenBucket, type AdmissionLimits, type AdmissionRefusal } from './users/admission.js';
export {
  SESSION_SNAPSHOT_VERSION,
  validateSessionSnapshot,
  type SessionSnapshot,
  type SnapshotQueuedInput,
  type SnapshotUnackedInput,
  type SnapshotDelayedLine,
  type SnapshotTelnet,
  type SnapshotWs,
} from './session/snapshot.js';
export { ResumeTokens, WS_CLOSE_CODES, WS_RESUME_PROTOCOL, type ResumeRequest, type TokenHolder, type WsResumeSettings } from './users/ws-resume.js';
export type { InheritedListeners } from './handover/types.js';
export {
  MemoryLedger,
  type InputLedger,
  type InputEntry,
  type LedgerLimits,
  type LedgerSink,
  type LedgerTotals,
  type SessionInputs,
  type QueueLimit,
  type UnackedLimit,
} from './delivery/index.js';
export { ClusterHolder, type ClusterHolderStats } from './cluster/holder.js';
export {
  resolveClusterHolderOptions,
  DEFAULT_HOLDER_TTL_MS,
  DEFAULT_MAX_STREAM_ENTRIES,
  DEFAULT_OUTPUT_BATCH,
  type ClusterHolderOptions,
  type ResolvedClusterHolderOptions,
} from './cluster/holder-options.js';
