"""Dataset audits: faces, perceived age and gender per class (model outputs, not facts), datasheets."""
