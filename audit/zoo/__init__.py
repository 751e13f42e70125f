"""The embedded model zoo: small models trained by this project on data that ships in packages."""
