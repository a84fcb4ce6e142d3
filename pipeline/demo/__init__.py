"""`thresher demo`: a small synthetic crawl written by the project, run through every stage."""
