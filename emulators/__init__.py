"""Development-only stand-ins for the outside world (Exchange, JRNI). Never deployed."""
