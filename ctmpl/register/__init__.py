"""``ctmpl register``: health-check one instance and keep its registration alive while healthy."""
