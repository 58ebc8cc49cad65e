"""The HTTP machinery that is not a handler: middleware, the page cache, the one render,
form parsing and the OpenAPI document."""
