"""Everything that must behave the same offline and online, one subpackage per concept.

In the order the data moves through them (each imports only those before it):

- `features.crm`: the CRM export contract, its taxonomy and job titles, loading and validation;
- `features.table`: a flat lead table (one row per lead), read and converted cell by cell;
- `features.pipeline`: the event store, the point-in-time feature kernel, the feature
  registry, one lead's context, training snapshots and labels;
- `features.points`: the transparent points score (the matrix, its engine, table points sheets);
- `features.model`: the model artifact, its MLflow face, its names, batch scoring;
- `features.synthetic`: the synthetic CRM generator (reads only `features.crm`).

`training` and `serving` import this package; it imports neither.
"""
