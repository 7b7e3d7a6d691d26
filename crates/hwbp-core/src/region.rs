//! Region splitting.
