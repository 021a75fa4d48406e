"""Point-in-time features: the event store and its two doors (an export, the API's leads),
the NumPy kernel, the feature registry, one lead's context, snapshots and labels."""
