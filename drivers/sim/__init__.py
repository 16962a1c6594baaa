"""Physics twins and device emulators."""
