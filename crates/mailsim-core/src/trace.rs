//! The message-trace vocabulary (exo-semantics §8.1, §8.2): data only.
