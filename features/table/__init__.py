"""A flat lead table (one row per lead, attributes and a converted flag): how a model
reads its columns (`spec`), the one conversion of its cells (`cells`), reading files (`read`)."""
