// nextAuth Mobile SDK for JavaScript: the app side of sigmai and of the ns, SFS and MC operations.
export { App, FlowError, contextLines } from './app.js';
export { Channel, ChannelError, RemoteError, openChannel, withChannel } from './channel.js';
export { MemoryStore } from './store.js';
export { decodeQR, QRError } from './qr.js';
export { EnvelopeError, openEnvelope } from './envelope.js';
export { PinError } from './pin.js';
export {
  ClientConnection,
  DeviceIdentity,
  KEY_TYPE_ED25519,
  KEY_TYPE_P256,
  ProtocolError,
  serverKeyHash,
  thumbprint,
} from './sigmai.js';
export { CryptoKeyIdentity, WebCryptoKeyring } from './webcrypto.js';
export { b64url, unb64url, toHex, fromHex } from './bytes.js';
