"""Push providers of the Message Center: FCM HTTP v1, APNs HTTP/2, and a logging stand-in."""
