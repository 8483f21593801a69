"""All writes and workflows. The only place where Django meets `modeling/`."""
