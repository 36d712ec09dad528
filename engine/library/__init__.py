"""The model library: installed models, the catalog, Hub search and verified downloads. No Qt."""
