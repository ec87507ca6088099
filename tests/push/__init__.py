"""Push providers against local FCM and APNs servers."""
