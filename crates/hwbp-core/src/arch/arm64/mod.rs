//! arm64 debug registers (filled in by the codec work).
