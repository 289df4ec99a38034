"""Pure domain code: model, money, ledger state machine, audit chain, ports. No I/O."""
