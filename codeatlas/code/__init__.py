"""code domain."""
