//! JUnit XML (the lead is writing it).
