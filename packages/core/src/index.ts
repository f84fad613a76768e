/**
 * `@imi/core`: what the intermediary and the app SDK share — the wire
 * protocol's message types and validators, the frame codec, the session
 * registry and the error table.
 *
 * @packageDocumentation
 */
export {
  ERROR_TABLE,
  ERROR_CODES,
  isImiErrorCode,
  ImiError,
  ProtocolError,
  LimitError,
  type ImiErrorCode,
  type ImiErrorOptions,
} from './errors.js';
export {
  PROTOCOL_VERSION,
  type JsonValue,
  type JsonObject,
  type RemoteAddress,
  type IntermediaryEnvelope,
  type ConnectMessage,
  type InputMessage,
  type DisconnectReason,
  type UserDisconnectMessage,
  type SyncedMessage,
  type PingMessage,
  type ErrorMessage,
  type ShutdownMessage,
  HANDOVER_SHUTDOWN_REASON,
  MAX_KNOWN_IN_HELLO,
  MAX_KNOWN_ID_LENGTH,
  type TelnetInfo,
  type TelnetInfoMessage,
  type GmcpMessage,
  type IntermediaryMessage,
  type IntermediaryParam,
  type AppEnvelope,
  type HelloMessage,
  type OutputMessage,
  type KickMessage,
  type LegacyDisconnectAck,
  type BroadcastMessage,
  type StateMessage,
  type AckMessage,
  type PongMessage,
  type NullMessage,
  type TelnetControlMessage,
  type SendGmcpMessage,
  type MsspMessage,
  type MsspValue,
  type SshLogin,
  type AppMessage,
  type AppParam,
} from './protocol.js';
export {
  validateAppMessage,
  validateIntermediaryMessage,
  validateLegacyIntermediaryMessage,
  LEGACY_DISCONNECT_REASON,
  isJsonObject,
  APP_PARAMS,
  INTERMEDIARY_PARAMS,
} from './validate.js';
export { FrameDecoder } from './frame-decoder.js';
export { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_FRAME_DEPTH, type FrameSink, type FrameDecoderOptions } from './frame-options.js';
export { decodeFrames, encodeFrame, type DecodeResult } from './frame-codec.js';
export {
  SessionRegistry,
  DEFAULT_MAX_STATE_BYTES,
  type SessionCounters,
  type SessionRecord,
  type NewSession,
  type SessionRegistryEvents,
  type SessionRegistryOptions,
} from './session-registry.js';
export { DEFAULT_CLUSTER_PARTITIONS, clusterKeys, partitionOf, clusterInteger } from './cluster.js';
export { txnIdSource } from './txn-id.js';
export { MemorySocket, memorySocketPair, MEMORY_SOCKET_HIGH_WATER_BYTES } from './memory-socket.js';
