"""What the servers and the Mobile SDK share besides the channel: OPRF, PIN proofs."""
