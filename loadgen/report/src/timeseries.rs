//! DIR/timeseries.jsonl (the lead is writing it).
