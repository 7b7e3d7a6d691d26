//! Slot constraints (filled in by the constraint work).
