"""What the servers and the Mobile SDK share besides the channel: OPRF, PIN proofs; and the small helpers
both ns and the IdP use (base64url, the hsid, secret files)."""
