"""Feed sources: saving one sends ads.import_feed to the Go worker; a finished import sends ads.score."""
