"""rendering domain."""
