"""The shop stays open: carry legacy changes after the bulk copy (``sync``), switch over
(``cutover``), see where the move stands (``status``) and retire legacy hashes (``sunset``)."""
