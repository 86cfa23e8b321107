"""Reading a config and checking it up front: the ConfigParser, the checks of each
section and component, the JSON schema, and building the objects a config names."""
