//! Paths of the fixture programs that hwbp's real-kernel tests watch.
