"""kopf handlers that apply render output and keep a ModelService's status true."""
