"""One router per resource; each route is a thin call onto `tuneyard.services`."""
