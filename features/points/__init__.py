"""The transparent points score: the matrix as validated data (`matrix`, the shipped
`default_rules.yaml`), its engine over the event store, and a lead table's points sheet."""
