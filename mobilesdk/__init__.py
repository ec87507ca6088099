"""Reference Mobile SDK: what the Android and iOS SDKs do, in Python, plus the phone simulator."""
