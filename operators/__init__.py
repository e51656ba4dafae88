"""framewax operators: the item types, the ledger and every stage of the dataflow."""
