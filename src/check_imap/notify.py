"""notify_on_change: placeholder, being written."""
