"""kubesvc.apiserver"""
