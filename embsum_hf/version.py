"""The package version (also `setup.cfg`'s): its own module, so that any layer can read it without importing the
package's top level."""

__version__ = "0.1.0"
