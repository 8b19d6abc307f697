"""Go text/template for consul-template's ``.ctmpl`` files: lexer, parser, executor, fmt,
and consul-template's functions."""
