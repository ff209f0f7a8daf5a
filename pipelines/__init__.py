"""kfp v2 pipeline definitions; compiled IR YAML lives in `compiled/`."""
