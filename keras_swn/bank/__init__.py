"""Bank planning (pure) and the `TemplateBank` layer that owns the variables."""
