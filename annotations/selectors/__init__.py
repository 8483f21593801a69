"""Read queries (review queue, lists, stats). One module per concern."""
