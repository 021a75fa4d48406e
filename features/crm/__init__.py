"""The CRM export (data contract v1): its tables and taxonomy, job titles and fit bands,
and the loader that reads, parses and validates an export folder or in-memory frames."""
