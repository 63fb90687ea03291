// Placeholder: the browser Bayeux client is written on branch fayejs.
