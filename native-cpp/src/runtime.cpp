// placeholder: implemented by the C++ exporter/importer work
